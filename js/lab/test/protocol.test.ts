// The protocol examples the kernel side checks too (tests/comms/protocol_examples.json).
import * as fs from 'fs';
import * as path from 'path';

import { ProtocolError, buildRequest, parseReply, parseRequest } from '../src/protocol';

type Message = Record<string, any>;
const examples: Record<string, Message[]> = JSON.parse(
  fs.readFileSync(path.join(__dirname, '../../../tests/comms/protocol_examples.json'), 'utf8')
);
const cases = (name: string): [Message][] => examples[name].map(message => [message]);

describe('protocol', () => {
  it.each(cases('valid_requests'))('accepts and rebuilds request %#', (message: Message) => {
    expect(parseRequest(JSON.parse(JSON.stringify(message)))).toEqual(message);
    expect(buildRequest(message.id, message.method, message.params)).toEqual(message);
  });

  it.each(cases('invalid_requests'))('refuses request %#', (message: Message) => {
    expect(() => parseRequest(message)).toThrow(ProtocolError);
  });

  it.each(cases('valid_replies'))('accepts reply %#', (message: Message) => {
    expect(parseReply(JSON.parse(JSON.stringify(message)))).toEqual(message);
  });

  it.each(cases('invalid_replies'))('refuses reply %#', (message: Message) => {
    expect(() => parseReply(message)).toThrow(ProtocolError);
  });
});
