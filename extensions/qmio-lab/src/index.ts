import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';

import { addCommands, CommandIDs, QASM_FILE_TYPE } from './commands';
import { QmioModel } from './model';
import { QmioPanel } from './panel';
import { QmioStatusItem } from './statusbar';
import { IQmioSettings } from './types';

const PLUGIN_ID = 'qmio-lab:plugin';
const PALETTE_CATEGORY = 'QMIO';

const DEFAULTS: IQmioSettings = {
  refreshInterval: 5,
  defaultTarget: 'qpu',
  defaultShots: 1000,
  chipMetric: 't1'
};

const chipIcon = new LabIcon({
  name: 'qmio-lab:chip',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<rect x="6" y="6" width="12" height="12" rx="2" fill="none" stroke="#616161" stroke-width="2"/>' +
    '<circle cx="10" cy="10" r="1.6"/><circle cx="14" cy="10" r="1.6"/>' +
    '<circle cx="10" cy="14" r="1.6"/><circle cx="14" cy="14" r="1.6"/>' +
    '<rect x="9" y="2" width="2" height="3"/><rect x="13" y="2" width="2" height="3"/>' +
    '<rect x="9" y="19" width="2" height="3"/><rect x="13" y="19" width="2" height="3"/>' +
    '<rect x="2" y="9" width="3" height="2"/><rect x="2" y="13" width="3" height="2"/>' +
    '<rect x="19" y="9" width="3" height="2"/><rect x="19" y="13" width="3" height="2"/>' +
    '</g></svg>'
});

/**
 * QMIO at a glance: the sidebar panel, the status bar item, the commands and their settings.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'QMIO QPU and emulator state, queue and calibration in JupyterLab',
  autoStart: true,
  requires: [],
  optional: [
    ILabShell,
    ICommandPalette,
    ISettingRegistry,
    IStatusBar,
    INotebookTracker,
    IFileBrowserFactory,
    ILayoutRestorer
  ],
  activate: async (
    app: JupyterFrontEnd,
    labShell: ILabShell | null,
    palette: ICommandPalette | null,
    registry: ISettingRegistry | null,
    statusBar: IStatusBar | null,
    notebooks: INotebookTracker | null,
    browsers: IFileBrowserFactory | null,
    restorer: ILayoutRestorer | null
  ) => {
    let settings: IQmioSettings = { ...DEFAULTS };
    const model = new QmioModel(settings.refreshInterval);
    const panel = new QmioPanel(model, settings.chipMetric);
    panel.title.icon = chipIcon;
    app.shell.add(panel, 'left', { rank: 600 });
    if (restorer) {
      restorer.add(panel, panel.id);
    }

    app.docRegistry.addFileType({
      name: QASM_FILE_TYPE,
      displayName: 'OpenQASM',
      extensions: ['.qasm'],
      mimeTypes: ['text/x-qasm'],
      fileFormat: 'text',
      contentType: 'file',
      icon: chipIcon
    });

    addCommands({
      app,
      model,
      settings: () => settings,
      browsers,
      notebooks,
      panelId: panel.id
    });

    if (palette) {
      for (const command of [
        CommandIDs.runOnDefault,
        CommandIDs.runOnQPU,
        CommandIDs.runOnEmulator,
        CommandIDs.openDashboard,
        CommandIDs.insertCell,
        CommandIDs.openPanel
      ]) {
        palette.addItem({ command, category: PALETTE_CATEGORY });
      }
    }
    const qasmItem = `.jp-DirListing-item[data-file-type="${QASM_FILE_TYPE}"]`;
    // from the file browser: run the right-clicked file (see commands.ts, currentQasm)
    const args = { from: 'browser' };
    app.contextMenu.addItem({ command: CommandIDs.runOnDefault, selector: qasmItem, rank: 0, args });
    app.contextMenu.addItem({ command: CommandIDs.runOnQPU, selector: qasmItem, rank: 1, args });
    app.contextMenu.addItem({ command: CommandIDs.runOnEmulator, selector: qasmItem, rank: 2, args });
    app.contextMenu.addItem({ command: CommandIDs.runOnDefault, selector: '.jp-FileEditor', rank: 0 });
    app.contextMenu.addItem({ command: CommandIDs.runOnQPU, selector: '.jp-FileEditor', rank: 1 });
    app.contextMenu.addItem({ command: CommandIDs.runOnEmulator, selector: '.jp-FileEditor', rank: 2 });
    app.contextMenu.addItem({ command: CommandIDs.insertCell, selector: '.jp-Notebook', rank: 20 });
    app.contextMenu.addItem({ command: CommandIDs.openDashboard, selector: '#qmio-lab-panel', rank: 1 });

    if (statusBar) {
      const item = new QmioStatusItem(model, () => app.shell.activateById(panel.id));
      statusBar.registerStatusItem('qmio-lab:status', {
        item,
        align: 'left',
        rank: 4,
        isActive: () => true
      });
    }

    if (registry) {
      const apply = (loaded: ISettingRegistry.ISettings): void => {
        settings = { ...DEFAULTS, ...(loaded.composite as unknown as Partial<IQmioSettings>) };
        model.intervalSeconds = settings.refreshInterval;
        panel.metric = settings.chipMetric;
        app.commands.notifyCommandChanged(CommandIDs.runOnDefault); // its label names the target
      };
      try {
        const loaded = await registry.load(PLUGIN_ID);
        apply(loaded);
        loaded.changed.connect(apply);
      } catch (error) {
        console.warn(`qmio-lab: settings not loaded, using defaults: ${error}`);
      }
    }
    void labShell;
  }
};

export default plugin;
