// Copy buttons: <button data-copy="element-id"> copies that element's text. The dashboard's
// only script; served from 'self' so the page's CSP needs no inline script.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const text = document.getElementById(button.dataset.copy)?.textContent ?? "";
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Select and copy the text";
  }
});
