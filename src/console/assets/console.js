// aivault console: progressive enhancement only; every form works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Show / hide a masked value the agent supplied.
  for (const button of document.querySelectorAll("button[data-reveal]")) {
    button.addEventListener("click", () => {
      const input = document.getElementById(button.dataset.reveal);
      if (!input) return;
      const hidden = input.type === "password";
      input.type = hidden ? "text" : "password";
      button.textContent = hidden ? "Hide" : "Show";
    });
  }
  // Picking a provider preset prefills the Connect form it belongs to.
  const presets = document.getElementById("presets");
  for (const field of document.querySelectorAll("input.preset")) {
    const apply = () => {
      if (!presets) return;
      const option = Array.from(presets.options).find((o) => o.value === field.value);
      if (!option) return;
      const form = field.form;
      form.elements.authorization_url.value = option.dataset.auth;
      if (!form.elements.token_url.readOnly) form.elements.token_url.value = option.dataset.token;
      form.elements.client_auth.value = option.dataset.clientAuth;
      const scopes = (option.dataset.scopes || "").split(" ").filter(Boolean);
      const list = document.getElementById(form.elements.scopes.getAttribute("list"));
      if (list) {
        list.replaceChildren(...scopes.map((s) => Object.assign(document.createElement("option"), { value: s })));
      }
      if (!form.elements.scopes.value && scopes.length) form.elements.scopes.value = scopes[0];
    };
    field.addEventListener("change", apply);
    field.addEventListener("input", apply);
  }
});
