// Camera page: live preview with getUserMedia, capture a frame to a canvas, post it as JPEG.
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
  document.getElementById("fallback").hidden = false;
  const p = document.getElementById("camera-problem");
  p.dataset.i18n = key;
  p.textContent = t(key) + (detail || "");
  if (detail) delete p.dataset.i18n;
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
    else problem("camerafail", `${t("camerafail")}${err.name}: ${err.message}`);
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

captureButton.addEventListener("click", () => {
  const canvas = document.getElementById("snapshot");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  captureButton.disabled = true;
  canvas.toBlob(async (blob) => {
    await classify(blob, "snapshot.jpg");
    captureButton.disabled = false;
  }, "image/jpeg", 0.9);
});

switchButton.addEventListener("click", () => {
  facing = facing === "environment" ? "user" : "environment";
  start();
});

start();
