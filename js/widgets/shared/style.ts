// The widgets' stylesheet. It lives inside each widget's shadow root, so no rule here can reach
// the sidebar, another widget or JupyterLab, and `:host { all: initial }` stops JupyterLab's
// inherited styles at the door. Colours come from JupyterLab's theme variables (custom
// properties do cross the shadow boundary), so light and dark themes both work.

export const CSS = `
:host { all: initial; display: block; }
.lenslab-root { position: relative; font: 12px/1.4 var(--jp-ui-font-family, system-ui, sans-serif);
  color: var(--jp-ui-font-color1, #222); }
.lenslab-root button { font: inherit; cursor: pointer; color: var(--jp-ui-font-color1, #222);
  background: var(--jp-layout-color2, #eee); border: 1px solid var(--jp-border-color1, #bbb);
  border-radius: 3px; padding: 1px 8px; }
.lenslab-root button:disabled { opacity: 0.5; cursor: default; }
.lenslab-root input { font: inherit; color: var(--jp-ui-font-color1, #222);
  background: var(--jp-input-background, var(--jp-layout-color1, #fff)); }
.lenslab-root input[type="text"], .lenslab-root input:not([type]) {
  border: 1px solid var(--jp-border-color1, #bbb); padding: 2px 4px; }
.lenslab-root code { font-family: var(--jp-code-font-family, monospace); }
.lenslab-title { font-weight: 600; margin: 2px 0 6px; }
.lenslab-muted { color: var(--jp-ui-font-color2, #666); }
.lenslab-error { color: var(--jp-error-color1, #b00020); white-space: pre-wrap; }
.lenslab-busy { display: inline-flex; align-items: center; gap: 6px;
  color: var(--jp-ui-font-color2, #555); }
.lenslab-busy::before { content: ""; width: 10px; height: 10px; border-radius: 50%;
  border: 2px solid #89a; border-top-color: transparent; animation: lenslab-spin 0.8s linear infinite; }
@keyframes lenslab-spin { to { transform: rotate(360deg); } }
.lenslab-chips { display: flex; flex-wrap: wrap; gap: 3px; margin: 3px 0 8px; }
.lenslab-chip { border: 1px solid var(--jp-border-color1, #bbc); border-radius: 3px; padding: 1px 5px;
  background: var(--jp-layout-color1, #fff); cursor: pointer;
  min-width: 18px; text-align: center; user-select: none; white-space: pre; }
.lenslab-chip:focus-visible, .lenslab-node:focus-visible { outline: 2px solid #2f6fdf;
  outline-offset: -1px; }
.lenslab-chip.lenslab-on { background: #2f6fdf; color: #fff; border-color: #2f6fdf; }
.lenslab-row { display: flex; gap: 8px; align-items: center; margin: 4px 0; }
.lenslab-code { font-family: var(--jp-code-font-family, monospace);
  background: var(--jp-layout-color2, #f3f4f7);
  padding: 2px 6px; border-radius: 3px; }
.lenslab-tree { max-height: 420px; overflow: auto; border: 1px solid var(--jp-border-color2, #dde);
  padding: 4px; }
.lenslab-node { display: flex; gap: 6px; align-items: baseline; padding: 1px 2px; cursor: pointer;
  white-space: nowrap; }
.lenslab-node:hover { background: var(--jp-layout-color2, #eef3ff); }
.lenslab-node.lenslab-on { background: rgba(47, 111, 223, 0.28); } /* readable in light and dark */
.lenslab-toggle { width: 12px; display: inline-block; color: var(--jp-ui-font-color2, #667); }
.lenslab-kind { color: var(--jp-success-color1, #5a8f2f); }
.lenslab-shape { color: var(--jp-ui-font-color2, #557); font-family: var(--jp-code-font-family, monospace); }
.lenslab-columns { display: flex; gap: 12px; align-items: flex-start; }
.lenslab-columns > div { flex: 1; border: 1px solid var(--jp-border-color2, #dde); border-radius: 4px;
  padding: 6px; }
.lenslab-text { white-space: pre-wrap; font-family: var(--jp-code-font-family, monospace); }
.lenslab-bar { height: 6px; background: var(--jp-layout-color3, #e4e6ee); border-radius: 3px;
  overflow: hidden; width: 160px; }
.lenslab-bar > div { height: 100%; background: #2f6fdf; }
.lenslab-run { margin: 0; flex-wrap: wrap; }
.lenslab-note[data-kind="refused"] { color: var(--jp-warn-color1, #a45a00); }
.lenslab-note[data-kind="queued"] { color: var(--jp-ui-font-color2, #555); font-style: italic; }
.lenslab-split { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.lenslab-detail { flex: 1 1 340px; min-width: 340px; border: 1px solid var(--jp-border-color2, #dde);
  border-radius: 4px; padding: 6px; }
.lenslab-topk { border-collapse: collapse; margin-top: 6px; }
.lenslab-topk th { text-align: left; padding: 0 12px 2px 0; }
.lenslab-topk td { padding: 2px 12px 2px 0; white-space: nowrap; vertical-align: top; }
.lenslab-topk .lenslab-bar { width: 100px; height: 4px; margin-top: 2px; }
.lenslab-token { font-family: var(--jp-code-font-family, monospace); white-space: pre;
  background: var(--jp-layout-color2, #f3f4f7); padding: 0 3px; border-radius: 3px; }
.lenslab-scroll { max-width: 100%; max-height: 75vh; overflow: auto; }
.lenslab-legend { display: flex; align-items: center; gap: 10px; margin: 0 0 4px 4px;
  color: var(--jp-ui-font-color2, #555); font-size: 11px; }
.lenslab-legend-scale { position: relative; width: 180px; margin: 0 18px; padding-bottom: 14px; }
.lenslab-legend-bar { height: 10px; border: 1px solid var(--jp-border-color2, #ccc); }
.lenslab-legend-ticks span { position: absolute; top: 12px; transform: translateX(-50%);
  white-space: nowrap; font-family: var(--jp-code-font-family, monospace); font-size: 10px; }
.lenslab-banner { display: none; margin: 0 0 6px; padding: 4px 8px; border-radius: 3px;
  border: 1px solid #d68a00; background: rgba(214, 138, 0, 0.18);
  color: var(--jp-ui-font-color1, #222); font-weight: 600; } /* readable in light and dark */
.lenslab-dead .lenslab-banner { display: block; }
.lenslab-dead .lenslab-banner.lenslab-flash { outline: 2px solid #d68a00; }
.lenslab-dead .lenslab-busy::before { display: none; }
.lenslab-dead input, .lenslab-dead button, .lenslab-dead .lenslab-chip, .lenslab-dead .lenslab-node,
.lenslab-dead canvas { cursor: not-allowed; }
.lenslab-dead input, .lenslab-dead button { opacity: 0.5; }
`;

/** The tooltip's own stylesheet (it lives in a shadow root on document.body). */
export const TIP_CSS = `
:host { all: initial; }
.lenslab-tip { position: fixed; z-index: 10000; pointer-events: none;
  background: var(--jp-layout-color0, #fffff4); color: var(--jp-ui-font-color1, #222);
  border: 1px solid var(--jp-border-color1, #aa9); padding: 4px 6px; white-space: pre;
  font: 11px/1.35 var(--jp-code-font-family, monospace); box-shadow: 0 1px 4px rgba(0,0,0,.3); }
`;
