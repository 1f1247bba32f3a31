// Shared by both pages: language switch, posting a photo to /predict, showing the answer in #result.
"use strict";

const TEXT = {
  zh: {
    title: "垃圾分类", nav_camera: "拍照识别", nav_upload: "上传图片", capture: "拍照识别", switch: "切换摄像头",
    starting: "正在打开摄像头…", ready: "对准物品，按“拍照识别”", working: "识别中…",
    drop_here: "把图片拖到这里，或", choose: "选择图片", take_photo: "拍照", use_upload: "改为上传图片",
    use_upload_camera: "打开上传页面，用手机相机拍照",
    bin: "投放到", probability: "可能性", unsure: "不太确定，也可能是：", top: "前五名",
    insecure: "这个地址不是 https，浏览器不允许网页在这里使用摄像头（只有 https 或 localhost 可以）。上传页面可以直接打开手机相机拍照。要在本页用摄像头，请用 https 打开（见 README）。",
    denied: "摄像头权限被拒绝。请在浏览器设置里允许使用摄像头后刷新，或改为上传图片。",
    nocamera: "没有找到摄像头。可以改为上传图片。",
    camerafail: "无法打开摄像头：", failed: "识别失败：", lang: "EN",
  },
  en: {
    title: "Garbage sorting", nav_camera: "Camera", nav_upload: "Upload", capture: "Capture & classify", switch: "Switch camera",
    starting: "Opening the camera…", ready: "Point at the item and press “Capture & classify”", working: "Classifying…",
    drop_here: "Drop a photo here, or", choose: "Choose a photo", take_photo: "Take a photo", use_upload: "Upload a photo instead",
    use_upload_camera: "Open the upload page and take a photo with the phone camera",
    bin: "Bin", probability: "probability", unsure: "Not sure — it may also be:", top: "Top 5",
    insecure: "This address is not https, and browsers allow a web page to use the camera only on https or localhost. The upload page can open the phone camera directly. To use the camera on this page, open it over https (see the README).",
    denied: "Camera permission was denied. Allow the camera in the browser settings and reload, or upload a photo instead.",
    nocamera: "No camera was found. You can upload a photo instead.",
    camerafail: "Cannot open the camera: ", failed: "Classification failed: ", lang: "中文",
  },
};
const BIN_EN = { "可回收物": "Recyclable", "有害垃圾": "Hazardous", "厨余垃圾": "Kitchen waste", "其他垃圾": "Other waste" };

let lang = localStorage.getItem("lang") || ((navigator.language || "zh").toLowerCase().startsWith("zh") ? "zh" : "en");
let lastResult = null;

function t(key) { return TEXT[lang][key] || key; }

function applyLanguage() {
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.getElementById("lang").textContent = t("lang");
  if (lastResult) showResult(lastResult);
}

document.getElementById("lang").addEventListener("click", () => {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem("lang", lang);
  applyLanguage();
});

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function itemName(name) { const i = name.indexOf("/"); return i < 0 ? name : name.slice(i + 1); }
function binLabel(bin) { return lang === "en" && BIN_EN[bin] ? `${BIN_EN[bin]} (${bin})` : bin; }
function pct(p) { return `${(p * 100).toFixed(1)}%`; }

function showResult(r) {
  lastResult = r;
  const box = document.getElementById("result");
  box.replaceChildren();
  const card = el("div", { class: "card", "data-label": r.label });
  card.append(el("div", { class: "item" }, itemName(r.name)));
  const binClass = BIN_EN[r.category] ? `bin bin-${r.category}` : "bin bin-unknown";
  card.append(el("div", { class: binClass }, `${t("bin")}: ${binLabel(r.category)}`));
  card.append(el("div", { class: "prob" }, `${t("probability")} ${pct(r.probability)}`));
  if (r.unsure) {
    const alts = r.top_k.slice(1, 4).map((a) => `${itemName(a.name)} (${pct(a.probability)})`).join(", ");
    card.append(el("p", { class: "unsure" }, `${t("unsure")} ${alts}`));
  }
  card.append(el("div", {}, t("top")));
  const list = el("ul", { class: "bars" });
  r.top_k.forEach((a) => {
    const li = el("li", { "data-label": a.label });
    li.append(el("span", {}, itemName(a.name)));
    const bar = el("div", { class: "bar" });
    bar.style.width = `${Math.max(1, a.probability * 100)}%`;
    li.append(bar, el("span", {}, pct(a.probability)));
    list.append(li);
  });
  card.append(list);
  box.append(card);
}

function showError(message) {
  lastResult = null;
  const box = document.getElementById("result");
  box.replaceChildren(el("p", { class: "error" }, t("failed") + message));
}

function showWorking() {
  lastResult = null;
  document.getElementById("result").replaceChildren(el("p", { class: "status" }, t("working")));
}

// Post a photo (already shrunk: see shrink.js) and show the answer.
async function classify(blob, filename) {
  const form = new FormData();
  form.append("file", blob, filename || "photo.jpg");
  showWorking();
  try {
    const response = await fetch("/predict", { method: "POST", body: form });
    const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (!response.ok) { showError(body.error || `HTTP ${response.status}`); return; }
    showResult(body);
  } catch (err) {
    showError(String(err));
  }
}

applyLanguage();
