// userdesk console: the little behaviour htmx does not give. No inline scripts anywhere
// (the CSP allows scripts from this origin only), so every hook is a data attribute.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : null;
  }

  // Every htmx request that changes something carries the session's CSRF token.
  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrfToken();
    if (token) { event.detail.headers["X-CSRF-Token"] = token; }
  });

  // Toasts: dismissable, and success ones fade after a few seconds.
  function armToasts(root) {
    root.querySelectorAll(".toast:not([data-armed])").forEach(function (toast) {
      toast.setAttribute("data-armed", "");
      var close = toast.querySelector(".toast-close");
      if (close) { close.addEventListener("click", function () { toast.remove(); }); }
      if (!toast.classList.contains("error")) {
        setTimeout(function () { toast.remove(); }, 6000);
      }
    });
  }

  // Copy to clipboard: <button data-copy="#element-with-the-text">.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) { return; }
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) { return; }
    var text = source.value !== undefined ? source.value : source.textContent;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text.trim()).then(done);
    } else if (source.select) {
      source.select();
      document.execCommand("copy");
      done();
    }
  });

  // <dialog> openers and closers: <button data-open-dialog="#id">, <button data-close-dialog>.
  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-open-dialog]");
    if (opener) {
      var dialog = document.querySelector(opener.getAttribute("data-open-dialog"));
      if (dialog && dialog.showModal) { event.preventDefault(); dialog.showModal(); }
      return;
    }
    var closer = event.target.closest("[data-close-dialog]");
    if (closer) {
      var open = closer.closest("dialog");
      if (open) { event.preventDefault(); open.close(); }
    }
  });

  // Kebab menus (<details class="menu">): one open at a time, closed by Escape or a click
  // elsewhere.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) { menu.removeAttribute("open"); }
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") { return; }
    var menus = document.querySelectorAll("details.menu[open]");
    if (menus.length) {
      menus.forEach(function (menu) {
        menu.removeAttribute("open");
        var summary = menu.querySelector("summary");
        if (summary) { summary.focus(); }
      });
      return;
    }
    var close = document.querySelector("[data-panel-close]");
    if (close && !document.querySelector("dialog[open]")) { close.click(); }
  });

  // Confirmations in our own dialog, which names what will happen (hx-confirm's question).
  document.addEventListener("htmx:confirm", function (event) {
    var question = event.detail.question;
    var dialog = document.getElementById("confirm-dialog");
    if (!question || !dialog || !dialog.showModal) { return; }
    event.preventDefault();
    document.getElementById("confirm-question").textContent = question;
    var ok = document.getElementById("confirm-ok");
    ok.textContent = event.detail.elt.getAttribute("data-confirm-label") || "Confirm";
    var fresh = ok.cloneNode(true);  // drop the listener of an earlier question
    ok.parentNode.replaceChild(fresh, ok);
    fresh.addEventListener("click", function () {
      dialog.close();
      event.detail.issueRequest(true);
    });
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      menu.removeAttribute("open");
    });
    dialog.showModal();
    fresh.focus();
  });

  // A click anywhere on a user's row opens it, as its name's link does; the menu cell and
  // modified clicks (new tab) keep their own behaviour.
  document.addEventListener("click", function (event) {
    var row = event.target.closest("tr[data-row-link]");
    if (!row || event.target.closest("td.kebab") || event.metaKey || event.ctrlKey ||
        event.shiftKey || event.button !== 0) { return; }
    var link = row.querySelector("[data-row-primary]");
    if (link && event.target !== link && !event.target.closest("a")) { link.click(); }
  });

  // The open user's row is marked as selected.
  function markSelectedRow() {
    var panel = document.querySelector("[data-panel-user]");
    var open = panel ? panel.getAttribute("data-panel-user") : null;
    document.querySelectorAll("tr[data-row-link]").forEach(function (row) {
      if (row.id === "row-" + open) { row.setAttribute("aria-selected", "true"); }
      else { row.removeAttribute("aria-selected"); }
    });
  }
  document.addEventListener("htmx:afterSettle", markSelectedRow);

  // Typing in an option's own field picks that option: <input data-selects="name=value">.
  function selectOption(event) {
    var target = event.target.closest && event.target.closest("[data-selects]");
    if (!target) { return; }
    var parts = target.getAttribute("data-selects").split("=");
    var form = target.form;
    var radio = form && form.querySelector('input[type=radio][name="' + parts[0] + '"][value="' + parts[1] + '"]');
    if (radio) { radio.checked = true; }
  }
  document.addEventListener("input", selectOption);
  document.addEventListener("change", selectOption);

  // A picture larger than the server takes is refused here, before it is sent.
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("input[type=file][data-max-bytes]")) { return; }
    var limit = parseInt(input.getAttribute("data-max-bytes"), 10);
    var file = input.files && input.files[0];
    if (file && limit && file.size > limit) {
      input.setCustomValidity("The picture is larger than " + Math.floor(limit / 1024) + " KiB.");
      input.reportValidity();
      input.value = "";
    } else {
      input.setCustomValidity("");
    }
  });

  // Answers that are not a page part (a body too large, a server error, no connection)
  // are never swapped in: a toast says what happened instead.
  function errorToast(message) {
    var area = document.getElementById("toasts");
    if (!area) { return; }
    var toast = document.createElement("div");
    toast.className = "toast error";
    toast.setAttribute("role", "alert");
    var text = document.createElement("span");
    text.textContent = message;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "\u00d7";
    toast.appendChild(text);
    toast.appendChild(close);
    area.appendChild(toast);
    armToasts(area);
  }
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    errorToast(status === 413
      ? "That is too large for the server to take (a picture over its size limit?)."
      : "Something went wrong on our side (HTTP " + status + "); it was logged. Try again.");
  });
  document.addEventListener("htmx:sendError", function () {
    errorToast("The server could not be reached. Check the connection and try again.");
  });

  // A panel that arrives is announced by moving focus to its heading.
  document.addEventListener("htmx:afterSwap", function (event) {
    armToasts(document);
    // A form that came back with errors: focus the first field marked invalid; else a new
    // panel's heading.
    var invalid = event.detail.target.querySelector("[aria-invalid=true]");
    var heading = event.detail.target.querySelector("[data-focus-on-swap]");
    if (invalid) { invalid.focus(); } else if (heading) { heading.focus(); }
  });
  document.addEventListener("htmx:oobAfterSwap", function () { armToasts(document); });
  document.addEventListener("DOMContentLoaded", function () { armToasts(document); });
})();
