// Upload page: choose or drop a photo, show it, post it to /predict.
"use strict";

const input = document.getElementById("file");
const drop = document.getElementById("drop");
const chosen = document.getElementById("chosen");

function handle(file) {
  if (!file) return;
  chosen.src = URL.createObjectURL(file);
  chosen.hidden = false;
  classify(file, file.name);
}

input.addEventListener("change", () => handle(input.files[0]));
["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); }));
["dragleave", "drop"].forEach((type) => drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
drop.addEventListener("drop", (e) => handle(e.dataTransfer.files[0]));
