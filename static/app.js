// Shared by both pages: language switch, posting a photo to /predict, showing the answer in #result.
// Item and bin names come from /labels: the model's own (Chinese) names and their English names
// (garbage_classify_v2/names_en.json on the server; a class it does not name keeps its own name).
// When the model is unsure the card leads with the most probable bin (the answer's `bins`), then
// the items. While the server collects (server.py --collect DIR: the answer carries a capture_id),
// the card asks "Correct?" / "Wrong? Choose the right item" right under the answer and posts the
// choice to /feedback; the chosen item then heads the card.
"use strict";

const TEXT = {
  zh: {
    title: "垃圾分类", nav_camera: "拍照识别", nav_upload: "上传图片", capture: "拍照识别", switch: "切换摄像头",
    starting: "正在打开摄像头…", ready: "对准物品，按“拍照识别”", working: "识别中…",
    drop_here: "把图片拖到这里，或", choose: "选择图片", take_photo: "拍照", use_upload: "改为上传图片",
    use_upload_camera: "打开上传页面，用手机相机拍照",
    bin: "投放到", probability: "可能性", unsure: "不太确定是哪一种，可能是：", top: "前五名", judged: "识别的照片",
    chosen: "你的选择", model_said: "模型的答案：",
    insecure: "这个地址不是 https，浏览器不允许网页在这里使用摄像头（只有 https 或 localhost 可以）。上传页面可以直接打开手机相机拍照。要在本页用摄像头，请用 https 打开（见 README）。",
    denied: "摄像头权限被拒绝。请在浏览器设置里允许使用摄像头后刷新，或改为上传图片。",
    nocamera: "没有找到摄像头。可以改为上传图片。",
    camerafail: "无法打开摄像头：", failed: "识别失败：", lang: "EN",
    privacy: "你确认或更正的照片会保存在本服务器上，用于改进模型。",
    correct: "正确 ✓", wrong: "不对？选择正确的类别", search: "搜索类别", nomatch: "没有匹配的类别",
    saving: "正在保存…", saved: "已保存，谢谢", feedback_failed: "保存失败：",
  },
  en: {
    title: "Garbage sorting", nav_camera: "Camera", nav_upload: "Upload", capture: "Capture & classify", switch: "Switch camera",
    starting: "Opening the camera…", ready: "Point at the item and press “Capture & classify”", working: "Classifying…",
    drop_here: "Drop a photo here, or", choose: "Choose a photo", take_photo: "Take a photo", use_upload: "Upload a photo instead",
    use_upload_camera: "Open the upload page and take a photo with the phone camera",
    bin: "Bin", probability: "probability", unsure: "Not sure which item; it may be:", top: "Top 5", judged: "The photo judged",
    chosen: "Your choice", model_said: "The model said: ",
    insecure: "This address is not https, and browsers allow a web page to use the camera only on https or localhost. The upload page can open the phone camera directly. To use the camera on this page, open it over https (see the README).",
    denied: "Camera permission was denied. Allow the camera in the browser settings and reload, or upload a photo instead.",
    nocamera: "No camera was found. You can upload a photo instead.",
    camerafail: "Cannot open the camera: ", failed: "Classification failed: ", lang: "中文",
    privacy: "Photos you correct or confirm are saved on this server to improve the model.",
    correct: "Correct ✓", wrong: "Wrong? Choose the right item", search: "Search the classes", nomatch: "No class matches",
    saving: "Saving…", saved: "Saved, thank you", feedback_failed: "Not saved: ",
  },
};

let lang = localStorage.getItem("lang") || ((navigator.language || "zh").toLowerCase().startsWith("zh") ? "zh" : "en");
let lastResult = null;
let feedback = null;  // the current answer's feedback: { id, label, open, query, busy, saved, error }
let labelsRequest = null;  // a promise of /labels (fetched once, again after a failure)
let known = null;  // /labels once it has come: { classes: [{ label, name, bin, item }], names: { en: { items, bins } } }

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

function ownItem(name) { const i = name.indexOf("/"); return i < 0 ? name : name.slice(i + 1); }
function binOf(name) { const i = name.indexOf("/"); return i < 0 ? name : name.slice(0, i); }
function translated() { return lang !== "zh" && known && known.names[lang] ? known.names[lang] : null; }
// The item of class `label` (its class name `name`) in the page's language; its own name where none is known.
function itemText(label, name) { const tr = translated(); return (tr && tr.items[label]) || ownItem(name); }
function binText(bin) { const tr = translated(); return (tr && tr.bins[bin]) || bin; }
// "Recyclable (可回收物)": the translation with the own name, where they differ.
function withOwn(text, own) { return text === own ? own : `${text} (${own})`; }
function binLabel(bin) { return withOwn(binText(bin), bin); }
function pct(p) { return `${(p * 100).toFixed(1)}%`; }

// The item's name, with its own name beside it where it is translated.
function itemHead(label, name) {
  const text = itemText(label, name);
  const head = el("div", { class: "item" }, text);
  if (text !== ownItem(name)) head.append(" ", el("span", { class: "own" }, ownItem(name)));
  return head;
}

function binTag(bin, suffix) {
  return el("div", { class: "bin", "data-bin": bin }, `${t("bin")}: ${binLabel(bin)}${suffix || ""}`);
}

// The top of the card: the item the user chose; else, when unsure, the most probable bin then the
// items; else the item, its bin and its probability.
function answerHead(r) {
  const head = el("div", { class: "answer" });
  const chosen = feedback && feedback.id === r.capture_id && feedback.saved;
  if (chosen) {
    head.append(itemHead(chosen.label, chosen.name), binTag(binOf(chosen.name)));
    const said = chosen.label === r.label ? "" : ` · ${t("model_said")}${itemText(r.label, r.name)} ${pct(r.probability)}`;
    head.append(el("p", { class: "chosen" }, t("chosen") + said));
  } else if (r.unsure) {
    const [bin, p] = Object.entries(r.bins || { [r.category]: r.probability }).sort((a, b) => b[1] - a[1])[0];
    const lead = binTag(bin, ` · ${pct(p)}`);
    lead.classList.add("bin-lead");
    head.append(lead);
    const items = r.top_k.slice(0, 3).map((a) => `${itemText(a.label, a.name)} ${pct(a.probability)}`).join(", ");
    head.append(el("p", { class: "unsure" }, `${t("unsure")} ${items}`));
  } else {
    head.append(itemHead(r.label, r.name), binTag(r.category),
                el("div", { class: "prob" }, `${t("probability")} ${pct(r.probability)}`));
  }
  return head;
}

// The top k as bars, each in its bin's colour, with the bin named.
function topBars(r) {
  const list = el("ul", { class: "bars", "aria-label": t("top") });
  r.top_k.forEach((a) => {
    const li = el("li", { "data-label": a.label, "data-bin": a.category });
    const name = el("span", { class: "bar-name" }, itemText(a.label, a.name));
    name.append(el("small", { class: "bar-bin" }, binText(a.category)));
    const bar = el("div", { class: "bar" });
    bar.style.width = `${Math.max(1, a.probability * 100)}%`;
    const track = el("div", { class: "track" });
    track.append(bar);
    li.append(name, track, el("span", { class: "bar-p" }, pct(a.probability)));
    list.append(li);
  });
  return list;
}

function showResult(r) {
  lastResult = r;
  if (r.capture_id && (!feedback || feedback.id !== r.capture_id)) {
    feedback = { id: r.capture_id, label: r.label, open: Boolean(r.unsure), query: "", busy: false, saved: null, error: null };
  }
  const box = document.getElementById("result");
  const card = el("div", { class: "card", "data-label": r.label });
  card.append(answerHead(r));
  if (r.capture_id) card.append(feedbackBox());
  card.append(el("div", { class: "top-head" }, t("top")), topBars(r));
  box.replaceChildren(card);
}

// A phone shows the answer below the preview: scroll so that the answer and, while collecting, its
// buttons (and the list when it is open) are on the screen; its top stays on it if it is taller.
function bringAnswerIntoView() {
  const card = document.querySelector("#result .card");
  if (!card) return;
  const key = card.querySelector(".feedback") || card;
  const margin = 8;
  const top = card.getBoundingClientRect().top;
  const bottom = key.getBoundingClientRect().bottom;
  if (bottom + margin > window.innerHeight) window.scrollBy(0, Math.min(bottom + margin - window.innerHeight, top - margin));
  else if (top < 0) window.scrollBy(0, top - margin);
}

// ----- /labels: the class list and its names in the other language, fetched once

function loadLabels() {
  if (!labelsRequest) {
    labelsRequest = fetch("/labels").then((response) => {
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      return response.json();
    }).then((body) => {
      known = {
        classes: body.labels.map((name, label) => ({ label, name, bin: binOf(name), item: ownItem(name) })),
        names: body.names || {},
      };
      return known;
    });
    labelsRequest.catch(() => { labelsRequest = null; });  // try again next time
  }
  return labelsRequest;
}

// ----- feedback (server.py --collect): "Correct ✓", or "Wrong?" and a searchable class list

function feedbackBox() {
  const fb = feedback;
  const box = el("div", { class: "feedback" });
  if (fb.saved) {
    const what = withOwn(itemText(fb.saved.label, fb.saved.name), ownItem(fb.saved.name));
    box.append(el("p", { class: "saved", "data-label": fb.saved.label }, t("saved") + (lang === "zh" ? "：" : ": ") + what));
    return box;
  }
  const buttons = el("div", { class: "buttons feedback-buttons" });
  const correct = el("button", { type: "button", class: "fb-correct" }, t("correct"));
  const wrong = el("button", { type: "button", class: "fb-wrong", "aria-expanded": String(fb.open) }, t("wrong"));
  correct.disabled = wrong.disabled = fb.busy;
  correct.addEventListener("click", () => sendFeedback(fb, fb.label));
  wrong.addEventListener("click", () => { fb.open = !fb.open; showResult(lastResult); });
  buttons.append(correct, wrong);
  box.append(buttons);
  if (fb.busy) box.append(el("p", { class: "status" }, t("saving")));
  if (fb.error) box.append(el("p", { class: "error" }, t("feedback_failed") + fb.error));
  if (fb.open && !fb.busy) box.append(picker(fb));
  return box;
}

function picker(fb) {
  const wrap = el("div", { class: "picker" });
  const search = el("input", { type: "search", class: "fb-search", placeholder: t("search"), "aria-label": t("search"),
    autocomplete: "off" });
  search.value = fb.query;
  const list = el("div", { class: "picker-list" });
  const none = el("p", { class: "status nomatch", hidden: "" }, t("nomatch"));
  wrap.append(search, list, none);
  const filter = () => {
    const q = search.value.trim().toLowerCase();
    let shown = 0;
    list.querySelectorAll(".group").forEach((group) => {
      let inGroup = 0;
      group.querySelectorAll("button").forEach((b) => {
        const match = !q || b.dataset.search.includes(q);
        b.hidden = !match;
        inGroup += match ? 1 : 0;
      });
      group.hidden = inGroup === 0;
      shown += inGroup;
    });
    none.hidden = shown > 0 || !list.childElementCount;
  };
  search.addEventListener("input", () => { fb.query = search.value; filter(); });
  search.addEventListener("keydown", (e) => {  // Enter picks the one class left
    const left = [...list.querySelectorAll(".choice")].filter((b) => !b.hidden);
    if (e.key === "Enter" && left.length === 1) left[0].click();
  });
  const fill = ({ classes }) => {
    const english = (known.names.en || { items: [], bins: {} });
    [...new Set(classes.map((c) => c.bin))].forEach((bin) => {
      const group = el("div", { class: "group" });
      group.append(el("div", { class: "group-head", "data-bin": bin }, binLabel(bin)));
      const choices = el("div", { class: "choices" });
      classes.filter((c) => c.bin === bin).forEach((c) => {
        const words = [c.item, english.items[c.label] || "", bin, english.bins[bin] || ""].join(" ").toLowerCase();
        const b = el("button", { type: "button", class: "choice", "data-label": c.label, "data-search": words },
                     withOwn(itemText(c.label, c.name), c.item));
        b.addEventListener("click", () => sendFeedback(fb, c.label));
        choices.append(b);
      });
      group.append(choices);
      list.append(group);
    });
    filter();
  };
  if (known) fill(known);  // at once: the list is on the screen when the card is scrolled into view
  else loadLabels().then(fill).catch((err) => { list.replaceChildren(el("p", { class: "error" }, t("feedback_failed") + err.message)); });
  return wrap;
}

async function sendFeedback(fb, label) {
  if (fb.busy || fb.saved) return;
  fb.busy = true;
  fb.error = null;
  if (feedback === fb && lastResult) showResult(lastResult);
  try {
    const response = await fetch("/feedback", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ capture_id: fb.id, label }),
    });
    const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (response.ok) fb.saved = { label: body.label, name: body.name };
    else fb.error = body.error || `HTTP ${response.status}`;
  } catch (err) {
    fb.error = String(err);
  }
  fb.busy = false;
  if (feedback === fb && lastResult) showResult(lastResult);  // unless another photo came meanwhile
}

function showError(message) {
  lastResult = feedback = null;
  const box = document.getElementById("result");
  box.replaceChildren(el("p", { class: "error" }, t("failed") + message));
}

function showWorking() {
  lastResult = feedback = null;
  document.getElementById("result").replaceChildren(el("p", { class: "status" }, t("working")));
}

// Post a photo (already shrunk: see shrink.js) and show the answer, in view. The names of /labels
// are fetched meanwhile (once); without them the answer shows the model's own names.
async function classify(blob, filename) {
  const form = new FormData();
  form.append("file", blob, filename || "photo.jpg");
  showWorking();
  const names = loadLabels().catch(() => null);
  try {
    const response = await fetch("/predict", { method: "POST", body: form });
    const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (!response.ok) { showError(body.error || `HTTP ${response.status}`); return; }
    await names;
    showResult(body);
    bringAnswerIntoView();
  } catch (err) {
    showError(String(err));
  }
}

applyLanguage();
