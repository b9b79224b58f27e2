// relay console: small progressive touches; every page works without this file.
document.addEventListener("DOMContentLoaded", () => {
  // `relay serve --sandbox` prints /console/login#token=…: the fragment never reaches the
  // server; fill the field and drop it from the address bar and history.
  const token = document.getElementById("token");
  const given = new URLSearchParams(window.location.hash.slice(1)).get("token");
  if (token && given) {
    token.value = given;
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  // Dead letters: one box ticks or clears every row.
  const all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", () => {
      document.querySelectorAll("input.select-letter").forEach((box) => { box.checked = all.checked; });
    });
  }
});
