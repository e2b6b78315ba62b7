/**
 * The lenslab JupyterLab extension: a sidebar listing the lenslab models in the active
 * notebook's kernel, their module trees, and what the last trace saved.
 */

import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';

import { insertAtCursor } from './insert';
import { LensSidebar } from './panel';

export { insertAtCursor };

export namespace CommandIDs {
  export const open = 'lenslab:open';
  export const insertPath = 'lenslab:insert-path';
  export const refresh = 'lenslab:refresh';
}

const PLUGIN_ID = 'lenslab:plugin';

export const lensIcon = new LabIcon({
  name: 'lenslab:lens',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<g class="jp-icon3" fill="#616161"><path d="M10 3a7 7 0 0 1 5.6 11.2l5.1 5.1-1.4 1.4-5.1-5.1' +
    'A7 7 0 1 1 10 3zm0 2a5 5 0 1 0 0 10 5 5 0 0 0 0-10z"/><circle cx="10" cy="10" r="2"/></g>' +
    '</svg>'
});

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'The lenslab sidebar: models, module trees and saved values of the kernel.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const sidebar = new LensSidebar(tracker, text => insertAtCursor(tracker, text));
    sidebar.title.icon = lensIcon;
    sidebar.title.caption = 'lenslab';
    app.shell.add(sidebar, 'left', { rank: 650 });
    restorer?.add(sidebar, 'lenslab-sidebar');

    app.commands.addCommand(CommandIDs.open, {
      label: 'lenslab: Show the sidebar',
      execute: () => app.shell.activateById(sidebar.id)
    });
    app.commands.addCommand(CommandIDs.insertPath, {
      label: "lenslab: Insert the selected module's path",
      caption: 'Insert the access path of the module last clicked in the lenslab sidebar',
      isEnabled: () => sidebar.view.selectedPath !== null && tracker.activeCell !== null,
      execute: () => {
        const path = sidebar.view.selectedPath;
        if (path !== null) {
          insertAtCursor(tracker, path);
        }
      }
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'lenslab: Refresh the sidebar',
      execute: () => sidebar.view.refreshNow()
    });
    for (const command of [CommandIDs.open, CommandIDs.insertPath, CommandIDs.refresh]) {
      palette?.addItem({ command, category: 'lenslab' });
    }
  }
};

export default plugin;
