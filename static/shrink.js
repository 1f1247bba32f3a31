// Shared by both pages: shrink a photo in the browser before it is posted. A 12-megapixel phone
// photo is 3-6 MB (slow over mobile data, and over 10 MB the server answers 413); the model looks
// at a few hundred pixels, so a JPEG whose longest side is 1280 px loses nothing and is ~10x smaller.
"use strict";

const SHRINK_MAX_SIDE = 1280;
const SHRINK_QUALITY = 0.9;

// Draw `source` (an ImageBitmap, a <video>, ...) of size width x height onto a canvas whose
// longest side is at most SHRINK_MAX_SIDE, and encode it as JPEG. Resolves to a Blob, or null
// when the browser cannot encode it.
function drawAsJpeg(source, width, height, canvas) {
  const scale = Math.min(1, SHRINK_MAX_SIDE / Math.max(width, height));
  const c = canvas || document.createElement("canvas");
  c.width = Math.max(1, Math.round(width * scale));
  c.height = Math.max(1, Math.round(height * scale));
  const ctx = c.getContext("2d");
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(source, 0, 0, c.width, c.height);
  return new Promise((resolve) => c.toBlob(resolve, "image/jpeg", SHRINK_QUALITY));
}

// The photo to post for `file`: { blob, name, shrunk }. Decoded with its EXIF orientation applied
// (phones store portrait photos sideways), drawn at most 1280 px on its longest side, JPEG 0.9.
// The original is sent when it is already small (<= 1280 px and JPEG), when shrinking would not
// make it smaller, or when anything fails (a format this browser cannot decode, e.g. HEIC in
// Chrome: the server decodes it).
async function shrinkPhoto(file) {
  const original = { blob: file, name: file.name || "photo.jpg", shrunk: false };
  if (typeof createImageBitmap !== "function") return original;
  let bitmap = null;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    const small = Math.max(bitmap.width, bitmap.height) <= SHRINK_MAX_SIDE;
    if (small && file.type === "image/jpeg") return original;  // the server applies EXIF orientation itself
    const blob = await drawAsJpeg(bitmap, bitmap.width, bitmap.height);
    if (!blob || blob.size === 0 || (small && blob.size >= file.size)) return original;
    const base = (file.name || "photo").replace(/\.[^.]*$/, "");
    return { blob, name: `${base}.jpg`, shrunk: true };
  } catch (err) {
    return original;
  } finally {
    if (bitmap) bitmap.close();
  }
}
