// Small progressive enhancements; every page works without them.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  if (!field) return;
  navigator.clipboard.writeText(field.value).then(() => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
    return;
  }
  // Forms that start paid or heavy work are sent once, however often the button is hit.
  if ("once" in form.dataset) {
    if (form.dataset.sent) {
      event.preventDefault();
      return;
    }
    form.dataset.sent = "yes";
    form.querySelectorAll("button[type=submit]").forEach((b) => { b.disabled = true; });
  }
});
// Times read in the viewer's own time zone; the UTC time stays on hover.
const localTime = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
});
const showLocalTimes = (root) => {
  root.querySelectorAll("time[datetime][data-local]").forEach((el) => {
    const at = new Date(el.dateTime);
    if (!Number.isNaN(at.getTime())) el.textContent = localTime.format(at);
  });
};
document.addEventListener("DOMContentLoaded", () => showLocalTimes(document));
document.addEventListener("htmx:afterSwap", (event) => showLocalTimes(event.target));
// A list with ticked rows stays as it is: its refresh would drop the ticks.
document.addEventListener("htmx:beforeRequest", (event) => {
  const list = event.detail.elt;
  if (list.matches("[data-hold-while-ticked]") && list.querySelector("input[type=checkbox]:checked")) {
    event.preventDefault();
  }
});
// A header box ticks every row of its selection.
document.addEventListener("change", (event) => {
  const all = event.target.closest("[data-tick-all]");
  if (!all) return;
  document.querySelectorAll(`input[name=id][form="${all.dataset.tickAll}"]`).forEach((box) => {
    box.checked = all.checked;
  });
});
