/**
 * The sidebar panel: follows the active notebook and its kernel, owns the LensConnection to
 * it (made again after a restart or a switch), and feeds the view.
 */

import { ISessionContext } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { ConnectionState, LensConnection } from './model';
import { IModelInfo, ISavedSnapshot } from './protocol';
import { SidebarView } from './widget';

export class LensSidebar extends Widget {
  constructor(
    private readonly tracker: INotebookTracker,
    insert: (text: string) => void
  ) {
    super();
    this.id = 'lenslab-sidebar';
    this.addClass('lenslab-sidebar');
    this.view = new SidebarView({
      children: (model, path) => this._connected().request('children', { model, path }),
      find: (model, query) => this._connected().request('find', { model, query }),
      insert,
      refresh: () => void this._refresh()
    });
    this.node.append(this.view.node);
    this.view.setStatus('no notebook', 'waiting');
  }

  readonly view: SidebarView;

  /** The connection to the active notebook's kernel, if any. */
  get connection(): LensConnection | null {
    return this._connection;
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this.tracker.currentChanged.connect(this._onCurrentChanged, this);
    this._follow(this.tracker.currentWidget);
  }

  protected onBeforeDetach(msg: Message): void {
    this.tracker.currentChanged.disconnect(this._onCurrentChanged, this);
    this._follow(null);
    super.onBeforeDetach(msg);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._follow(null);
    super.dispose();
  }

  private _onCurrentChanged(_: INotebookTracker, panel: NotebookPanel | null): void {
    this._follow(panel);
  }

  /** Watch `panel`'s session (or nothing), and connect to its kernel. */
  private _follow(panel: NotebookPanel | null): void {
    const session = panel?.sessionContext ?? null;
    if (session === this._session) {
      return;
    }
    if (this._session !== null) {
      this._session.kernelChanged.disconnect(this._onKernelChanged, this);
      this._session.statusChanged.disconnect(this._onStatusChanged, this);
      this._session.iopubMessage.disconnect(this._onIOPub, this);
    }
    this._session = session;
    if (session !== null) {
      session.kernelChanged.connect(this._onKernelChanged, this);
      session.statusChanged.connect(this._onStatusChanged, this);
      session.iopubMessage.connect(this._onIOPub, this);
    }
    this._useKernel(session?.session?.kernel ?? null);
    if (session === null) {
      this.view.setStatus('no notebook', 'waiting');
    }
  }

  private _onKernelChanged(): void {
    this._useKernel(this._session?.session?.kernel ?? null);
  }

  private _onStatusChanged(_: ISessionContext, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
      this._useKernel(null);
      this.view.setStatus(`kernel ${status}`, 'waiting');
    } else if (status === 'idle' && this._connection === null) {
      this._useKernel(this._session?.session?.kernel ?? null);
    }
  }

  /** After each cell the main shell ran: connect if lenslab is new there, else refresh. */
  private _onIOPub(_: ISessionContext, msg: KernelMessage.IMessage): void {
    if (
      msg.header.msg_type !== 'status' ||
      (msg as KernelMessage.IStatusMsg).content.execution_state !== 'idle' ||
      (msg.parent_header as Partial<KernelMessage.IHeader>).msg_type !== 'execute_request'
    ) {
      return;
    }
    const connection = this._connection;
    if (connection === null) {
      this._useKernel(this._session?.session?.kernel ?? null);
    } else if (connection.state === 'ready') {
      void this._refresh();
    } else if (connection.state === 'absent') {
      void connection.connect();
    }
  }

  private _useKernel(kernel: Kernel.IKernelConnection | null): void {
    if (kernel !== null && this._connection?.kernel === kernel && !this._connection.isDisposed) {
      return;
    }
    if (this._connection !== null) {
      this._connection.dispose();
      this._connection = null;
      this.view.clear();
    }
    if (kernel === null) {
      this.view.setStatus('no kernel', 'waiting');
      return;
    }
    const connection = new LensConnection(kernel);
    this._connection = connection;
    connection.stateChanged.connect(this._onStateChanged, this);
    connection.modelsChanged.connect((_, models: IModelInfo[]) => this.view.setModels(models));
    connection.savedChanged.connect((_, saved: ISavedSnapshot) => this.view.setSaved(saved));
    this._onStateChanged(connection, connection.state);
    void connection.connect();
  }

  private _onStateChanged(connection: LensConnection, state: ConnectionState): void {
    if (connection !== this._connection) {
      return;
    }
    const text: Record<ConnectionState, string> = {
      absent: 'import lenslab in this kernel',
      connecting: 'connecting…',
      ready: 'connected',
      disposed: 'disconnected'
    };
    this.view.setStatus(text[state], state === 'ready' ? 'ready' : 'waiting');
    this.node.dataset.state = state;
  }

  private async _refresh(): Promise<void> {
    const connection = this._connection;
    if (connection === null) {
      return;
    }
    if (connection.state !== 'ready') {
      await connection.connect();
      return;
    }
    try {
      await connection.refresh();
    } catch (error) {
      console.warn('[lenslab] refresh failed', error);
      this.view.setStatus(String(error), 'error');
    }
  }

  private _connected(): LensConnection {
    if (this._connection === null) {
      throw new Error('[lenslab] no kernel');
    }
    return this._connection;
  }

  private _session: ISessionContext | null = null;
  private _connection: LensConnection | null = null;
}
