// Camera page: live preview with getUserMedia, capture a frame to a canvas (at most 1280 px, see
// shrink.js), post it as JPEG. The canvas stays on show under the answer: the frame that was judged,
// still while the preview moves on, until the next capture draws the next one. Browsers allow the camera only on secure origins (https, localhost):
// on a phone that opened http://<laptop>:10086/ the page says so and links to the upload page,
// whose file input opens the phone camera without https.
"use strict";

const video = document.getElementById("preview");
const captureButton = document.getElementById("capture");
const switchButton = document.getElementById("switch");
const statusLine = document.getElementById("camera-status");
let stream = null;
let facing = "environment";

function problem(key, detail) {
  statusLine.hidden = true;
  captureButton.disabled = true;
  document.getElementById("camera-box").classList.add("no-camera");  // no empty black preview
  document.getElementById("fallback").hidden = false;
  if (key === "insecure") document.getElementById("to-upload").dataset.i18n = "use_upload_camera";
  const p = document.getElementById("camera-problem");
  p.dataset.i18n = key;
  p.textContent = t(key) + (detail || "");
  if (detail) delete p.dataset.i18n;
  applyLanguage();
}

async function start() {
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    problem("insecure");
    return;
  }
  if (stream) stream.getTracks().forEach((track) => track.stop());
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: facing }, audio: false });
  } catch (err) {
    if (err.name === "NotAllowedError" || err.name === "SecurityError") problem("denied");
    else if (err.name === "NotFoundError" || err.name === "OverconstrainedError") problem("nocamera");
    else problem("camerafail", `${err.name}: ${err.message}`);
    return;
  }
  video.srcObject = stream;
  await video.play().catch(() => {});
  captureButton.disabled = false;
  statusLine.dataset.i18n = "ready";
  statusLine.textContent = t("ready");
  const devices = await navigator.mediaDevices.enumerateDevices();
  switchButton.hidden = devices.filter((d) => d.kind === "videoinput").length < 2;
}

captureButton.addEventListener("click", async () => {
  captureButton.disabled = true;
  const canvas = document.getElementById("snapshot");
  const blob = await drawAsJpeg(video, video.videoWidth, video.videoHeight, canvas);
  document.getElementById("judged").hidden = false;
  if (blob) await classify(blob, "snapshot.jpg");
  else showError("canvas.toBlob");
  captureButton.disabled = false;
});

switchButton.addEventListener("click", () => {
  facing = facing === "environment" ? "user" : "environment";
  start();
});

start();
