// Upload page: take a photo with the phone camera, or choose or drop one; show it, shrink it, post it to /predict.
"use strict";

const drop = document.getElementById("drop");
const chosen = document.getElementById("chosen");
let previewUrl = null;

async function handle(file) {
  if (!file) return;
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(file);
  chosen.src = previewUrl;
  chosen.hidden = false;
  showWorking();
  const photo = await shrinkPhoto(file);
  await classify(photo.blob, photo.name);
}

["file", "camera-file"].forEach((id) => {
  const input = document.getElementById(id);
  input.addEventListener("change", () => {
    handle(input.files[0]);
    input.value = "";  // choosing the same photo again is a change too
  });
});
["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); }));
["dragleave", "drop"].forEach((type) => drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
drop.addEventListener("drop", (e) => handle(e.dataTransfer.files[0]));
