// Runs before the first paint (loaded without defer): apply the saved theme, mark JS as on.
(function () {
  "use strict";
  var root = document.documentElement;
  root.classList.add("js");
  try {
    var saved = window.localStorage.getItem("zapjobs-theme");
    if (saved === "light" || saved === "dark") {
      root.setAttribute("data-theme", saved);
    }
  } catch (error) {
    // Storage may be disabled: the automatic theme stays.
  }
})();
