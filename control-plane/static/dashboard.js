// Copy buttons: <button data-copy="element-id"> copies that element's text. Served from
// 'self' so the page's CSP needs no inline script; texts come translated in <meta name="text-…">.
const pageText = (name) => document.querySelector(`meta[name="text-${name}"]`).content;
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const text = document.getElementById(button.dataset.copy)?.textContent ?? "";
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = pageText("copied");
  } catch {
    button.textContent = pageText("copy-failed");
  }
});
