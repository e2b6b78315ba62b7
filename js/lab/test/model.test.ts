import { LensConnection } from '../src/model';

/** A kernel with one comm target that answers like lenslab.comms does (or refuses). */
class FakeComm {
  onMsg: (msg: any) => void = () => undefined;
  onClose: (msg: any) => void = () => undefined;
  isDisposed = false;
  sent: any[] = [];
  constructor(private readonly kernel: FakeKernel) {}
  open(data: any) {
    this.send(data);
  }
  send(data: any) {
    this.sent.push(data);
    this.kernel.answer(this, data);
  }
  close() {
    this.isDisposed = true;
  }
  dispose() {
    this.isDisposed = true;
  }
}

class FakeKernel {
  info = Promise.resolve({});
  supportsSubshells = false;
  isDisposed = false;
  comms: FakeComm[] = [];
  constructor(public mode: 'lenslab' | 'absent' | 'silent') {}
  createComm() {
    const comm = new FakeComm(this);
    this.comms.push(comm);
    return comm;
  }
  answer(comm: FakeComm, data: any) {
    setTimeout(() => {
      if (this.mode === 'absent') {
        comm.onClose({});
        return;
      }
      if (this.mode === 'silent') {
        return;
      }
      const results: Record<string, unknown> = {
        hello: { protocol: 1, lenslab: '0.1.0', busy: false },
        models: [{ name: 'model' }],
        saved: { trace: 1, values: [] }
      };
      const reply =
        data.method in results
          ? { v: 1, type: 'reply', id: data.id, ok: true, result: results[data.method] }
          : { v: 1, type: 'reply', id: data.id, ok: false, error: 'no such model' };
      comm.onMsg({ content: { data: reply } });
    }, 0);
  }
}

describe('LensConnection', () => {
  it('connects, refreshes and answers requests by id', async () => {
    const kernel = new FakeKernel('lenslab');
    const connection = new LensConnection(kernel as any);
    const states: string[] = [];
    connection.stateChanged.connect((_, state) => states.push(state));
    let saved = 0;
    connection.savedChanged.connect(() => saved++);
    expect(await connection.connect()).toBe(true);
    expect(states).toEqual(['connecting', 'ready']);
    expect(connection.models).toEqual([{ name: 'model' }]);
    await connection.refresh();
    expect(saved).toBe(1); // the same trace is not emitted twice
    await expect(connection.request('children', { model: 'x', path: [] })).rejects.toThrow(
      'no such model'
    );
    const ids = kernel.comms[0].sent.map(message => message.id);
    expect(new Set(ids).size).toBe(ids.length);
    connection.dispose();
    expect(kernel.comms[0].isDisposed).toBe(true);
    await expect(connection.request('models', {})).rejects.toThrow('not connected');
  });

  it('is absent while the kernel has no lenslab, and retries', async () => {
    const kernel = new FakeKernel('absent');
    const connection = new LensConnection(kernel as any);
    expect(await connection.connect()).toBe(false);
    expect(connection.state).toBe('absent');
    kernel.mode = 'lenslab';
    expect(await connection.connect()).toBe(true);
    expect(kernel.comms).toHaveLength(2);
  });

  it('times out a request the kernel never answers', async () => {
    const kernel = new FakeKernel('lenslab');
    const connection = new LensConnection(kernel as any);
    await connection.connect();
    kernel.mode = 'silent';
    await expect(connection.request('models', {}, 20)).rejects.toThrow('got no answer');
  });
});
