import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** An error reply of a /qmio route (or no reply at all: `status` 0). */
export class QmioRequestError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

/**
 * Call a /qmio route of the server extension and return its JSON reply.
 */
export async function requestAPI<T>(
  endPoint: string,
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'qmio', endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new QmioRequestError(`cannot reach the Jupyter server: ${error}`, 0);
  }
  const text = await response.text();
  let data: any = null;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch (error) {
      data = { error: text.slice(0, 300) };
    }
  }
  if (!response.ok) {
    if (response.status === 404 && !(data && data.error)) {
      throw new QmioRequestError(
        'the qmio_lab server extension does not answer: is it installed and enabled? ' +
          '(jupyter server extension list)',
        404
      );
    }
    const message = (data && (data.error || data.message)) || response.statusText;
    throw new QmioRequestError(message, response.status);
  }
  return data as T;
}
