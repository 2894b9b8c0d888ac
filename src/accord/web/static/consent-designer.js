// The banner designer and texts editor: a live preview of the unsaved form. Without this
// script the "Preview" button does the same on request.
document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-live-preview]")) {
    const button = form.querySelector("button[formtarget]");
    if (!button) continue;
    let timer = null;
    const refresh = () => {
      clearTimeout(timer);
      timer = setTimeout(() => form.requestSubmit(button), 350);
    };
    for (const picker of form.querySelectorAll("input[type=color][data-mirror]")) {
      const text = form.querySelector(`input[name="${picker.dataset.mirror}"]`);
      picker.addEventListener("input", () => {
        text.value = picker.value;
      });
      text.addEventListener("input", () => {
        if (/^#[0-9a-fA-F]{6}$/.test(text.value)) picker.value = text.value;
      });
    }
    // Only "input": a "change" also fires when a field loses focus, which would reload the
    // preview under a click made in it.
    form.addEventListener("input", refresh);
  }
});
