// A hover tooltip on document.body (an output area may clip or transform what is inside it),
// in its own shadow root so its rules stay its own.
import { h, shadow } from "./dom";
import { TIP_CSS } from "./style";

export class Tooltip {
  private host: HTMLDivElement;
  private tip: HTMLDivElement;

  constructor() {
    this.host = h("div", { className: "lenslab-tip-host" });
    this.tip = h("div", { className: "lenslab-tip" });
    this.tip.style.display = "none";
    shadow(this.host, TIP_CSS).append(this.tip);
    document.body.append(this.host);
  }

  show(text: string, x: number, y: number): void {
    this.tip.textContent = text;
    this.tip.style.display = "block";
    this.tip.style.left = `${x + 12}px`;
    this.tip.style.top = `${y + 12}px`;
  }

  hide(): void {
    this.tip.style.display = "none";
  }

  dispose(): void {
    this.host.remove();
  }
}
