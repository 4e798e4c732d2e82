// What every glucose chart shares: the consensus target range, drawn as a band behind the data
// (canvas drawing, so the style-src policy needs no inline style).
import {scale} from "./units.js";

export const TARGET_MGDL = [70, 180];

export const targetBand = (u) => {
  const top = u.valToPos(scale(TARGET_MGDL[1]), "y", true);
  const bottom = u.valToPos(scale(TARGET_MGDL[0]), "y", true);
  u.ctx.fillStyle = "rgba(27, 110, 32, 0.12)";
  u.ctx.fillRect(u.bbox.left, top, u.bbox.width, bottom - top);
};
