"""The scripts the viewer part runs in the OHIF page: what it draws, and which image."""

from __future__ import annotations

# Every 20 ms: a sample of the viewport's pixels (one row and one column through the middle,
# cheap to read); each change is kept with its wall time (ms). And each render of a viewport by
# Cornerstone, with the shown image's id and quality (imageQualityStatus: 8 = full resolution).
WATCH = """(() => {
  window.__draws = [];
  window.__renders = [];
  let last = null;
  setInterval(() => {
    const c = document.querySelector('canvas.cornerstone-canvas');
    if (!c || !c.width || !c.height) return;
    const g = c.getContext('2d');
    const rows = [g.getImageData(0, c.height >> 1, c.width, 1).data,
                  g.getImageData(c.width >> 1, 0, 1, c.height).data];
    let n = 0, sum = 0, squares = 0, sig = 0;
    for (const d of rows) {
      for (let i = 0; i < d.length; i += 4) {
        const v = d[i]; n += 1; sum += v; squares += v * v; sig = (sig * 31 + v) % 1000000007;
      }
    }
    const mean = sum / n, std = Math.sqrt(Math.max(0, squares / n - mean * mean));
    if (sig !== last) {
      last = sig;
      window.__draws.push({t: performance.timeOrigin + performance.now(), std: std});
    }
  }, 20);
  const hook = setInterval(() => {
    const cs = window.cornerstone;
    if (!cs || !cs.eventTarget) return;
    clearInterval(hook);
    cs.eventTarget.addEventListener('CORNERSTONE_ELEMENT_ENABLED', (e) => {
      const el = e.detail.element;
      el.addEventListener('CORNERSTONE_IMAGE_RENDERED', () => {
        const en = cs.getEnabledElement(el), vp = en && en.viewport;
        const img = vp && vp.getCornerstoneImage && vp.getCornerstoneImage();
        const pixel = img && cs.metaData.get('imagePixelModule', img.imageId);
        window.__renders.push({t: performance.timeOrigin + performance.now(),
          id: img ? String(img.imageId) : null, q: img ? img.imageQualityStatus : null,
          w: img ? img.width : null, columns: pixel ? pixel.columns : null});
      });
    });
  }, 10);
})();"""

# The image the viewport shows: its imageId is "wadors:" and the frame's URL.
SHOWN = """(() => {
  const cs = window.cornerstone;
  const el = cs && cs.getEnabledElements && cs.getEnabledElements()[0];
  const id = el && el.viewport && el.viewport.getCurrentImageId && el.viewport.getCurrentImageId();
  return id ? String(id).replace(/^wadors:/, '') : null;
})()"""
