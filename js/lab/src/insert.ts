/**
 * Path insertion into the active notebook cell (the sidebar's click, the insert command).
 */

import type { INotebookTracker } from '@jupyterlab/notebook';

/**
 * Insert `text` into the active notebook's active cell. In edit mode it replaces the selection
 * at the cursor. In command mode the cursor is not the user's (it may sit inside a word), so the
 * path goes on a line of its own at the end of the cell, and the cell enters edit mode with the
 * cursor after it.
 */
export function insertAtCursor(tracker: INotebookTracker, text: string): boolean {
  const editor = tracker.activeCell?.editor ?? null;
  if (editor === null) {
    console.warn('[lenslab] no active cell to insert into');
    return false;
  }
  const notebook = tracker.currentWidget?.content ?? null;
  if (notebook !== null && notebook.mode !== 'edit') {
    const source = editor.model.sharedModel.getSource();
    const joined = source === '' || source.endsWith('\n') ? source : `${source}\n`;
    editor.model.sharedModel.setSource(joined + text);
    notebook.mode = 'edit';
    editor.setCursorPosition(editor.getPositionAt(joined.length + text.length) ?? { line: 0, column: 0 });
  } else if (editor.replaceSelection !== undefined) {
    editor.replaceSelection(text);
  } else {
    const position = editor.getCursorPosition();
    const offset = editor.getOffsetAt(position);
    const source = editor.model.sharedModel.getSource();
    editor.model.sharedModel.setSource(source.slice(0, offset) + text + source.slice(offset));
  }
  editor.focus();
  return true;
}
