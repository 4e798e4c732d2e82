// The page's shared controls: a group of toggle buttons (one pressed at a time), and charts
// redrawn once a resize has settled (uPlot draws at a fixed width).
export function toggleGroup(selector, onPick) {
  const buttons = document.querySelectorAll(selector);
  buttons.forEach((button) => {
    button.addEventListener("click", () => {
      buttons.forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
      onPick(button);
    });
  });
}

export function redrawAfterResize(redraw) {
  let waiting = null;
  window.addEventListener("resize", () => {
    clearTimeout(waiting);
    waiting = setTimeout(redraw, 100);
  });
}
