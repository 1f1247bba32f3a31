// Shared by both pages: language switch, posting a photo to /predict, showing the answer in #result.
// While the server collects (server.py --collect DIR: the answer carries a capture_id), the card
// asks "Correct?" / "Wrong? Choose the right item" and posts the choice to /feedback.
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
    privacy: "你确认或更正的照片会保存在本服务器上，用于改进模型。",
    correct: "正确 ✓", wrong: "不对？选择正确的类别", search: "搜索类别", nomatch: "没有匹配的类别",
    saving: "正在保存…", saved: "已保存，谢谢", feedback_failed: "保存失败：",
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
    privacy: "Photos you correct or confirm are saved on this server to improve the model.",
    correct: "Correct ✓", wrong: "Wrong? Choose the right item", search: "Search the classes", nomatch: "No class matches",
    saving: "Saving…", saved: "Saved, thank you", feedback_failed: "Not saved: ",
  },
};
const BIN_EN = { "可回收物": "Recyclable", "有害垃圾": "Hazardous", "厨余垃圾": "Kitchen waste", "其他垃圾": "Other waste" };
// English item names of the garbage_classify_v2 and TrashNet classes (the class list is Chinese).
const ITEM_EN = {
  一次性快餐盒: "takeaway box", 污损塑料: "soiled plastic", 烟蒂: "cigarette butt", 牙签: "toothpick",
  破碎花盆及碟碗: "broken pot or dish", 竹筷: "bamboo chopsticks", 剩饭剩菜: "leftovers", 大骨头: "big bone",
  水果果皮: "fruit peel", 水果果肉: "fruit flesh", 茶叶渣: "tea leaves", 菜叶菜根: "vegetable leaves", 蛋壳: "eggshell",
  鱼骨: "fish bone", 充电宝: "power bank", 包: "bag", 化妆品瓶: "cosmetics bottle", 塑料玩具: "plastic toy",
  塑料碗盆: "plastic bowl", 塑料衣架: "plastic hanger", 快递纸袋: "paper mailer", 插头电线: "plug and cable",
  旧衣服: "old clothes", 易拉罐: "drink can", 枕头: "pillow", 毛绒玩具: "soft toy", 洗发水瓶: "shampoo bottle",
  玻璃杯: "glass cup", 皮鞋: "leather shoe", 砧板: "chopping board", 纸板箱: "cardboard box", 调料瓶: "spice bottle",
  酒瓶: "wine bottle", 金属食品罐: "food tin", 锅: "pot", 食用油桶: "cooking oil can", 饮料瓶: "drink bottle",
  干电池: "battery", 软膏: "ointment", 过期药物: "expired medicine",
  玻璃: "glass", 金属: "metal", 纸张: "paper", 塑料: "plastic", 其他: "other",
};

let lang = localStorage.getItem("lang") || ((navigator.language || "zh").toLowerCase().startsWith("zh") ? "zh" : "en");
let lastResult = null;
let feedback = null;  // the current answer's feedback: { id, label, open, query, busy, saved, error }
let classList = null;  // a promise of the classes from /labels, fetched once

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
function binOf(name) { const i = name.indexOf("/"); return i < 0 ? name : name.slice(0, i); }
function itemLabel(item) { return lang === "en" && ITEM_EN[item] ? `${ITEM_EN[item]} (${item})` : item; }
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
  if (r.capture_id) {
    if (!feedback || feedback.id !== r.capture_id) {
      feedback = { id: r.capture_id, label: r.label, open: Boolean(r.unsure), query: "", busy: false, saved: null, error: null };
    }
    card.append(feedbackBox());
  }
  box.append(card);
}

// ----- feedback (server.py --collect): "Correct ✓", or "Wrong?" and a searchable class list

function loadClasses() {
  if (!classList) {
    classList = fetch("/labels").then((response) => {
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      return response.json();
    }).then((body) => body.labels.map((name, label) => ({ label, name, bin: binOf(name), item: itemName(name) })));
    classList.catch(() => { classList = null; });  // try again next time
  }
  return classList;
}

function feedbackBox() {
  const fb = feedback;
  const box = el("div", { class: "feedback" });
  if (fb.saved) {
    const what = itemLabel(itemName(fb.saved.name));
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
  loadClasses().then((classes) => {
    const bins = [...new Set(classes.map((c) => c.bin))];
    bins.forEach((bin) => {
      const group = el("div", { class: "group" });
      group.append(el("div", { class: BIN_EN[bin] ? `group-head bin-${bin}` : "group-head bin-unknown" }, binLabel(bin)));
      const choices = el("div", { class: "choices" });
      classes.filter((c) => c.bin === bin).forEach((c) => {
        const words = [c.item, ITEM_EN[c.item] || "", bin, BIN_EN[bin] || ""].join(" ").toLowerCase();
        const b = el("button", { type: "button", class: "choice", "data-label": c.label, "data-search": words }, itemLabel(c.item));
        b.addEventListener("click", () => sendFeedback(fb, c.label));
        choices.append(b);
      });
      group.append(choices);
      list.append(group);
    });
    filter();
  }).catch((err) => { list.replaceChildren(el("p", { class: "error" }, t("feedback_failed") + err.message)); });
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
