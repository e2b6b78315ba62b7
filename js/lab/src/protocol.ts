/**
 * The wire format between the sidebar and the kernel, version 1.
 * Mirrors python/lenslab/comms/protocol.py; both sides check tests/comms/protocol_examples.json.
 */

export const PROTOCOL_VERSION = 1;
export const TARGET_NAME = 'lenslab';

export type Method = 'hello' | 'models' | 'children' | 'find' | 'saved';

export interface IParams {
  hello: Record<string, never>;
  models: Record<string, never>;
  saved: Record<string, never>;
  children: { model: string; path: string[] };
  find: { model: string; query: string };
}

export interface IRequest<M extends Method = Method> {
  v: number;
  type: 'request';
  id: string;
  method: M;
  params: IParams[M];
}

export interface IHello {
  protocol: number;
  lenslab: string;
  busy: boolean;
}

export interface IModelInfo {
  name: string;
  cls: string;
  wrapper: string;
  params: number;
  device: string;
  dtype: string;
}

export interface IModuleNode {
  key: string;
  path: string[];
  /** The module's class; for a call, the line of code it is on. */
  cls: string;
  children: number;
  /** Calls inside the module's forward (listed after its children, as `kind: 'call'`). */
  calls: number;
  shape: string | null;
  kind: 'module' | 'call';
}

export interface ISavedValue {
  name: string;
  kind: string;
  shape: number[] | null;
  dtype: string | null;
  min: number | null;
  mean: number | null;
  max: number | null;
  spark: number[] | null;
  heat: number[][] | null;
  /** "" for the user's own trace, else the lenslab widget or tool that ran it. */
  origin: string;
}

export interface ISavedSnapshot {
  trace: number;
  values: ISavedValue[];
}

export interface IResults {
  hello: IHello;
  models: IModelInfo[];
  children: IModuleNode[];
  find: IModuleNode[];
  saved: ISavedSnapshot;
}

export type IReply =
  | { v: number; type: 'reply'; id: string; ok: true; result: unknown }
  | { v: number; type: 'reply'; id: string; ok: false; error: string };

export class ProtocolError extends Error {}

const PARAM_KINDS: { [M in Method]: [string, 'string' | 'list'][] } = {
  hello: [],
  models: [],
  saved: [],
  children: [
    ['model', 'string'],
    ['path', 'list']
  ],
  find: [
    ['model', 'string'],
    ['query', 'string']
  ]
};

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A request as the sidebar sends it. */
export function buildRequest<M extends Method>(
  id: string,
  method: M,
  params: IParams[M]
): IRequest<M> {
  return { v: PROTOCOL_VERSION, type: 'request', id, method, params };
}

/** Check a request (the kernel does the same); throws ProtocolError naming the problem. */
export function parseRequest(data: unknown): IRequest {
  if (!isObject(data)) {
    throw new ProtocolError('a lenslab message is a JSON object');
  }
  if (data.v !== PROTOCOL_VERSION) {
    throw new ProtocolError(`lenslab protocol version ${String(data.v)} is not supported`);
  }
  if (data.type !== 'request') {
    throw new ProtocolError(`expected a request, got type ${String(data.type)}`);
  }
  if (typeof data.id !== 'string' || data.id === '') {
    throw new ProtocolError('a request needs a non-empty string id');
  }
  const method = data.method;
  if (typeof method !== 'string' || !(method in PARAM_KINDS)) {
    throw new ProtocolError(`unknown method ${String(method)}`);
  }
  const params = data.params ?? {};
  if (!isObject(params)) {
    throw new ProtocolError(`params of ${method} must be an object`);
  }
  for (const [name, kind] of PARAM_KINDS[method as Method]) {
    const value = params[name];
    const ok =
      kind === 'string'
        ? typeof value === 'string'
        : Array.isArray(value) && value.every(item => typeof item === 'string');
    if (!ok) {
      throw new ProtocolError(`${method} needs params.${name} (${kind})`);
    }
  }
  return data as unknown as IRequest;
}

/** Check a reply from the kernel; throws ProtocolError when it is not one. */
export function parseReply(data: unknown): IReply {
  if (!isObject(data) || data.v !== PROTOCOL_VERSION) {
    throw new ProtocolError('expected a version-1 lenslab reply object');
  }
  if (data.type !== 'reply' || typeof data.id !== 'string') {
    throw new ProtocolError("a reply needs type 'reply' and a string id");
  }
  if (data.ok === true && 'result' in data) {
    return data as unknown as IReply;
  }
  if (data.ok === false && typeof data.error === 'string') {
    return data as unknown as IReply;
  }
  throw new ProtocolError('a reply has ok=true with a result, or ok=false with an error string');
}
