// Controls that need JavaScript: the theme choice, elements marked .js-only, and filter
// forms that leave empty fields out of the URL (runs?status=Failed, not &job_type=).

export function setupTheme() {
  const select = document.getElementById("theme-select");
  if (!select) return;
  select.value = document.documentElement.getAttribute("data-theme") || "auto";
  select.parentElement.hidden = false;
  select.addEventListener("change", () => {
    document.documentElement.setAttribute("data-theme", select.value);
    try {
      if (select.value === "auto") window.localStorage.removeItem("zapjobs-theme");
      else window.localStorage.setItem("zapjobs-theme", select.value);
    } catch {
      // Storage disabled: the choice lasts for this page.
    }
  });
}

export function showScriptControls() {
  for (const node of document.querySelectorAll(".js-only")) node.hidden = false;
}

export function setupFilterForms() {
  for (const form of document.querySelectorAll("form.filters")) {
    form.addEventListener("submit", () => {
      for (const field of form.elements) {
        if (field.name && field.value.trim() === "") field.disabled = true;
      }
      // Back from the next page (bfcache): the fields must work again.
      window.addEventListener("pageshow", () => {
        for (const field of form.elements) field.disabled = false;
      }, { once: true });
    });
  }
}
