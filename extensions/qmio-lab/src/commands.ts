import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, MainAreaWidget, Notification, showDialog } from '@jupyterlab/apputils';
import { IDocumentWidget } from '@jupyterlab/docregistry';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { CalibrationDashboard } from './dashboard';
import { el } from './format';
import { QmioModel } from './model';
import { requestAPI } from './request';
import { IQmioSettings, IQPUJob } from './types';

export namespace CommandIDs {
  export const runOnQPU = 'qmio-lab:run-qasm-qpu';
  export const runOnEmulator = 'qmio-lab:run-qasm-emulator';
  export const runOnDefault = 'qmio-lab:run-qasm';
  export const openDashboard = 'qmio-lab:open-calibration-dashboard';
  export const insertCell = 'qmio-lab:insert-qmio-cell';
  export const openPanel = 'qmio-lab:open-panel';
}

export const QASM_FILE_TYPE = 'openqasm';

const EXAMPLE_QASM = `OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
h q[0];
cx q[0], q[1];
c = measure q;`;

interface IQasmSource {
  path: string;
  text: string;
}

export interface ICommandContext {
  app: JupyterFrontEnd;
  model: QmioModel;
  settings: () => IQmioSettings;
  browsers: IFileBrowserFactory | null;
  notebooks: INotebookTracker | null;
  panelId: string;
}

function isQasm(path: string | undefined): boolean {
  return !!path && /\.qasm$/i.test(path);
}

/** Where a run command was invoked from: the file browser's context menu passes `{ from: 'browser' }`. */
export interface IRunArgs {
  from?: string;
}

function selectedQasm(ctx: ICommandContext): string | null {
  const browser = ctx.browsers?.tracker.currentWidget;
  const item = browser ? Array.from(browser.selectedItems()).find(i => isQasm(i.path)) : undefined;
  return item ? item.path : null;
}

function openQasm(ctx: ICommandContext): IDocumentWidget | null {
  const widget = ctx.app.shell.currentWidget as IDocumentWidget | null;
  return widget && widget.context && isQasm(widget.context.path) ? widget : null;
}

/**
 * The OpenQASM program to run: the file right-clicked in the file browser; otherwise the open
 * .qasm document (with its unsaved edits), else the .qasm file selected in the file browser.
 * (Where the command came from is told by its arguments: JupyterLab keeps the last context-menu
 * event forever, so testing that event would run a file right-clicked long ago.)
 */
async function currentQasm(ctx: ICommandContext, fromBrowser: boolean): Promise<IQasmSource | null> {
  const widget = fromBrowser ? null : openQasm(ctx);
  if (widget) {
    return { path: widget.context.path, text: widget.context.model.toString() };
  }
  const path = selectedQasm(ctx);
  if (path) {
    const model = await ctx.app.serviceManager.contents.get(path, { content: true });
    return { path, text: String(model.content) };
  }
  return null;
}

function hasQasmTarget(ctx: ICommandContext): boolean {
  return openQasm(ctx) !== null || selectedQasm(ctx) !== null;
}

async function runOnQPU(ctx: ICommandContext, source: IQasmSource): Promise<IQPUJob> {
  const job = await requestAPI<IQPUJob>('qpu/jobs', {
    method: 'POST',
    body: JSON.stringify({ qasm: source.text, shots: ctx.settings().defaultShots, name: source.path })
  });
  void ctx.model.refresh();
  Notification.success(`${source.path} queued on the QPU as job ${job.id}`, {
    autoClose: 5000,
    actions: [
      { label: 'Show queue', callback: () => ctx.app.shell.activateById(ctx.panelId) }
    ]
  });
  return job;
}

async function runOnEmulator(ctx: ICommandContext, source: IQasmSource): Promise<void> {
  const shots = ctx.settings().defaultShots;
  const done = Notification.emit(`Emulating ${source.path} (${shots} shots)…`, 'in-progress', {
    autoClose: false
  });
  try {
    const reply = await requestAPI<{ counts: Record<string, number> }>('emulator/run', {
      method: 'POST',
      body: JSON.stringify({ qasm: source.text, shots })
    });
    Notification.dismiss(done);
    const body = el('table', 'jp-qmio-table');
    const sorted = Object.entries(reply.counts).sort((a, b) => b[1] - a[1]);
    for (const [bits, n] of sorted.slice(0, 32)) {
      const tr = el('tr');
      tr.appendChild(el('td', undefined, bits));
      tr.appendChild(el('td', undefined, String(n)));
      body.appendChild(tr);
    }
    void ctx.model.refresh();
    await showDialog({
      title: `Emulator counts: ${source.path}`,
      body: new Widget({ node: body }),
      buttons: [Dialog.okButton()]
    });
  } catch (error) {
    Notification.update({
      id: done,
      message: `Emulating ${source.path} failed: ${(error as Error).message}`,
      type: 'error',
      autoClose: 8000
    });
  }
}

async function runQasm(
  ctx: ICommandContext,
  target: 'qpu' | 'emulator',
  args: IRunArgs
): Promise<void> {
  const source = await currentQasm(ctx, args.from === 'browser');
  if (!source) {
    Notification.warning('Open or select an OpenQASM (.qasm) file first.', { autoClose: 5000 });
    return;
  }
  try {
    if (target === 'qpu') {
      await runOnQPU(ctx, source);
    } else {
      await runOnEmulator(ctx, source);
    }
  } catch (error) {
    Notification.error(`${source.path} was not submitted: ${(error as Error).message}`, {
      autoClose: 8000
    });
  }
}

function insertQmioCell(ctx: ICommandContext): void {
  const panel = ctx.notebooks?.currentWidget;
  if (!panel) {
    Notification.warning('Open a notebook first.', { autoClose: 4000 });
    return;
  }
  const notebook = panel.content;
  const { defaultTarget, defaultShots } = ctx.settings();
  const cells = panel.context.model.sharedModel.cells;
  const loaded = cells.some(c => c.getSource().includes('load_ext qmio_lab'));
  if (!loaded) {
    NotebookActions.insertAbove(notebook);
    notebook.activeCell?.model.sharedModel.setSource('%load_ext qmio_lab');
    NotebookActions.selectBelow(notebook);
  }
  NotebookActions.insertBelow(notebook);
  notebook.activeCell?.model.sharedModel.setSource(
    `%%qmio --target ${defaultTarget} --shots ${defaultShots}\n${EXAMPLE_QASM}`
  );
}

export function addCommands(ctx: ICommandContext): void {
  const { app, model } = ctx;
  let dashboard: MainAreaWidget<CalibrationDashboard> | null = null;

  app.commands.addCommand(CommandIDs.runOnQPU, {
    label: 'Run this .qasm file on the QPU',
    caption: 'Submit the OpenQASM file to the QMIO QPU queue',
    isEnabled: () => hasQasmTarget(ctx),
    execute: args => runQasm(ctx, 'qpu', args as IRunArgs)
  });
  app.commands.addCommand(CommandIDs.runOnEmulator, {
    label: 'Run this .qasm file on the emulator',
    caption: 'Emulate the OpenQASM file on the Dask emulator cluster',
    isEnabled: () => hasQasmTarget(ctx),
    execute: args => runQasm(ctx, 'emulator', args as IRunArgs)
  });
  app.commands.addCommand(CommandIDs.runOnDefault, {
    label: () => `Run this .qasm file (${ctx.settings().defaultTarget})`,
    caption: 'Run the OpenQASM file on the default target (Settings → QMIO → Default target)',
    isEnabled: () => hasQasmTarget(ctx),
    execute: args => runQasm(ctx, ctx.settings().defaultTarget, args as IRunArgs)
  });
  app.commands.addCommand(CommandIDs.openDashboard, {
    label: 'Open calibration dashboard',
    caption: 'QMIO chip calibration: maps, per-qubit figures and history',
    execute: () => {
      if (!dashboard || dashboard.isDisposed) {
        dashboard = new MainAreaWidget({ content: new CalibrationDashboard(model) });
        dashboard.id = 'qmio-lab-calibration-dashboard';
        dashboard.title.label = 'QMIO calibration';
        dashboard.title.closable = true;
      }
      if (!dashboard.isAttached) {
        app.shell.add(dashboard, 'main');
      } else {
        void dashboard.content.reload();
      }
      app.shell.activateById(dashboard.id);
    }
  });
  app.commands.addCommand(CommandIDs.insertCell, {
    label: 'Insert %%qmio cell',
    caption: 'Insert a %%qmio cell (OpenQASM run on the default target) below the active cell',
    isEnabled: () => !!ctx.notebooks?.currentWidget,
    execute: () => insertQmioCell(ctx)
  });
  app.commands.addCommand(CommandIDs.openPanel, {
    label: 'Show the QMIO panel',
    execute: () => app.shell.activateById(ctx.panelId)
  });
}
