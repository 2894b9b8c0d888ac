// A minimal consent banner of the fixture site: marketing tags run only after "Accept all".
(function () {
  function runMarketing() {
    document.cookie = "_fbp=fb.1.1700000000.42; path=/";
    localStorage.setItem("_hjSessionUser_1", "{}");
    var img = new Image();
    img.src = "https://connect.facebook.net/signals/config/1?v=2";
  }
  if (/(?:^|;\s*)site_consent=yes/.test(document.cookie)) { runMarketing(); return; }
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = "Accept all";
    button.addEventListener("click", function () {
      document.cookie = "site_consent=yes; path=/";
      button.remove();
      runMarketing();
    });
    document.body.appendChild(button);
  });
})();
