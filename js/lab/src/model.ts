/**
 * The comm traffic with one kernel: open the "lenslab" comm (over a kernel subshell when the
 * kernel has them), send requests with an id and a timeout, and emit what changed.
 */

import { Kernel, KernelMessage } from '@jupyterlab/services';
import { UUID } from '@lumino/coreutils';
import { ISignal, Signal } from '@lumino/signaling';

import {
  IModelInfo,
  IParams,
  IResults,
  ISavedSnapshot,
  Method,
  TARGET_NAME,
  buildRequest,
  parseReply
} from './protocol';

/** Where the connection stands: no lenslab in the kernel yet, connecting, or ready. */
export type ConnectionState = 'absent' | 'connecting' | 'ready' | 'disposed';

export const REQUEST_TIMEOUT_MS = 15000;

interface IPending {
  resolve: (value: unknown) => void;
  reject: (reason: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

export class LensConnection {
  constructor(readonly kernel: Kernel.IKernelConnection) {}

  get state(): ConnectionState {
    return this._state;
  }

  get stateChanged(): ISignal<this, ConnectionState> {
    return this._stateChanged;
  }

  /** The models in the kernel, after each refresh. */
  get modelsChanged(): ISignal<this, IModelInfo[]> {
    return this._modelsChanged;
  }

  /** What the most recent trace saved, after each refresh that found a newer trace. */
  get savedChanged(): ISignal<this, ISavedSnapshot> {
    return this._savedChanged;
  }

  get models(): IModelInfo[] {
    return this._models;
  }

  get saved(): ISavedSnapshot | null {
    return this._saved;
  }

  /** Open the comm; resolves true when the kernel answered (lenslab is imported there). */
  async connect(): Promise<boolean> {
    if (this._state === 'ready' || this._state === 'disposed') {
      return this._state === 'ready';
    }
    if (this._connecting) {
      return this._connecting;
    }
    this._connecting = this._open().finally(() => {
      this._connecting = null;
    });
    return this._connecting;
  }

  /** Ask for the models and the saved values again. */
  async refresh(): Promise<void> {
    if (this._state !== 'ready') {
      return;
    }
    const [models, saved] = await Promise.all([
      this.request('models', {}),
      this.request('saved', {})
    ]);
    this._models = models;
    this._modelsChanged.emit(models);
    if (this._saved === null || saved.trace !== this._saved.trace) {
      this._saved = saved;
      this._savedChanged.emit(saved);
    }
  }

  /** One round trip: resolves with the result, rejects on an error reply or the timeout. */
  request<M extends Method>(
    method: M,
    params: IParams[M],
    timeoutMs = REQUEST_TIMEOUT_MS
  ): Promise<IResults[M]> {
    const comm = this._comm;
    if (comm === null || this._state !== 'ready') {
      return Promise.reject(new Error('[lenslab] not connected to a kernel with lenslab'));
    }
    const id = UUID.uuid4();
    return new Promise<IResults[M]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new Error(`[lenslab] ${method} got no answer in ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this._pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      comm.send(buildRequest(id, method, params) as unknown as Record<string, never>);
    });
  }

  dispose(): void {
    if (this._state === 'disposed') {
      return;
    }
    this._setState('disposed');
    this._rejectAll('[lenslab] connection closed');
    const comm = this._comm;
    this._comm = null;
    if (comm !== null && !comm.isDisposed && !this.kernel.isDisposed) {
      try {
        comm.close();
      } catch {
        // the kernel is already gone
      }
    }
  }

  get isDisposed(): boolean {
    return this._state === 'disposed';
  }

  private async _open(): Promise<boolean> {
    this._setState('connecting');
    const kernel = this.kernel;
    let comm: Kernel.IComm;
    try {
      await kernel.info;
      comm = kernel.createComm(TARGET_NAME);
      // services runs comms over a subshell per target by default: wait until it exists,
      // or the open would queue behind a running cell on the main shell
      const subshell = comm as Kernel.IComm & {
        subshellStarted?: Promise<void>;
        commsOverSubshells?: string;
      };
      if (
        kernel.supportsSubshells &&
        subshell.subshellStarted !== undefined &&
        subshell.commsOverSubshells !== 'disabled'
      ) {
        await withTimeout(subshell.subshellStarted, 10000).catch(error =>
          console.warn('[lenslab] no subshell; comms share the main shell', error)
        );
      }
    } catch (error) {
      console.warn('[lenslab] could not open a comm', error);
      this._setStateUnlessDisposed('absent');
      return false;
    }
    if (this.isDisposed) {
      comm.dispose();
      return false;
    }
    this._comm = comm;
    const hello = UUID.uuid4();
    const answered = new Promise<boolean>(resolve => {
      const timer = setTimeout(() => resolve(false), REQUEST_TIMEOUT_MS);
      this._pending.set(hello, {
        resolve: () => resolve(true),
        reject: () => resolve(false),
        timer
      });
      comm.onClose = () => {
        // the kernel has no "lenslab" target (not imported yet), or it went away
        this._comm = null;
        this._rejectAll('[lenslab] the kernel closed the comm');
        this._setStateUnlessDisposed('absent');
      };
    });
    comm.onMsg = (msg: KernelMessage.ICommMsgMsg) => this._onMessage(msg.content.data);
    comm.open(buildRequest(hello, 'hello', {}) as unknown as Record<string, never>);
    const ok = await answered;
    if (ok && !this.isDisposed && this._comm === comm) {
      this._setState('ready');
      await this.refresh().catch(error => console.warn('[lenslab] refresh failed', error));
      return true;
    }
    if (!ok && this._comm === comm) {
      this._comm = null;
      comm.dispose();
    }
    this._setStateUnlessDisposed('absent');
    return false;
  }

  private _onMessage(data: unknown): void {
    let reply;
    try {
      reply = parseReply(data);
    } catch (error) {
      console.warn('[lenslab] ignored a message', error);
      return;
    }
    const pending = this._pending.get(reply.id);
    if (pending === undefined) {
      return;
    }
    this._pending.delete(reply.id);
    clearTimeout(pending.timer);
    if (reply.ok) {
      pending.resolve(reply.result);
    } else {
      pending.reject(new Error(reply.error));
    }
  }

  private _rejectAll(reason: string): void {
    for (const pending of this._pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new Error(reason));
    }
    this._pending.clear();
  }

  private _setStateUnlessDisposed(state: ConnectionState): void {
    if (!this.isDisposed) {
      this._setState(state);
    }
  }

  private _setState(state: ConnectionState): void {
    if (state !== this._state) {
      this._state = state;
      this._stateChanged.emit(state);
    }
  }

  private _state: ConnectionState = 'absent';
  private _comm: Kernel.IComm | null = null;
  private _connecting: Promise<boolean> | null = null;
  private _pending = new Map<string, IPending>();
  private _models: IModelInfo[] = [];
  private _saved: ISavedSnapshot | null = null;
  private _stateChanged = new Signal<this, ConnectionState>(this);
  private _modelsChanged = new Signal<this, IModelInfo[]>(this);
  private _savedChanged = new Signal<this, ISavedSnapshot>(this);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    promise.then(
      value => {
        clearTimeout(timer);
        resolve(value);
      },
      error => {
        clearTimeout(timer);
        reject(error);
      }
    );
  });
}
