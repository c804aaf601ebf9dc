// Passkeys: the WebAuthn ceremonies behind the buttons of the sign-in and security pages.
// Served by Net API itself (the pages' Content-Security-Policy allows scripts from here only).
// The server speaks JSON with binary fields in base64url; the browser's API wants
// ArrayBuffers: the conversions are here. Every other step (what is allowed, who signs in)
// is the server's.
"use strict";

(function () {
  function fromBase64url(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "===".slice((base64.length + 3) % 4);
    const binary = atob(padded);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (let i = 0; i < bytes.length; i++) {
      binary += String.fromCharCode(bytes[i]);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(json) {
    const options = json.publicKey;
    options.challenge = fromBase64url(options.challenge);
    options.user.id = fromBase64url(options.user.id);
    (options.excludeCredentials || []).forEach(function (c) {
      c.id = fromBase64url(c.id);
    });
    return { publicKey: options };
  }

  function requestOptions(json) {
    const options = json.publicKey;
    options.challenge = fromBase64url(options.challenge);
    (options.allowCredentials || []).forEach(function (c) {
      c.id = fromBase64url(c.id);
    });
    return { publicKey: options };
  }

  function registrationJson(credential) {
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: {
        clientDataJSON: toBase64url(credential.response.clientDataJSON),
        attestationObject: toBase64url(credential.response.attestationObject),
      },
      extensions: {},
    };
  }

  function assertionJson(credential) {
    const response = credential.response;
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: {
        clientDataJSON: toBase64url(response.clientDataJSON),
        authenticatorData: toBase64url(response.authenticatorData),
        signature: toBase64url(response.signature),
        userHandle: response.userHandle ? toBase64url(response.userHandle) : null,
      },
      extensions: {},
    };
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    let json = {};
    try {
      json = await response.json();
    } catch (_) {
      // An empty or non-JSON answer: the status says enough.
    }
    if (!response.ok) {
      const message = json.error && json.error.message;
      const error = new Error(message || "The server refused (" + response.status + ").");
      error.status = response.status;
      throw error;
    }
    return json;
  }

  function say(text) {
    const box = document.querySelector('[data-role="passkey-message"]');
    if (box) {
      box.textContent = text;
      box.hidden = false;
    }
  }

  async function addPasskey(button) {
    const nameField = document.getElementById("passkey-name");
    const name = nameField ? nameField.value.trim() : "";
    if (!name) {
      say("Give the passkey a name first.");
      return;
    }
    const csrf = button.dataset.csrf;
    try {
      const options = await post("/portal/security/passkeys/options", { csrf_token: csrf });
      const credential = await navigator.credentials.create(creationOptions(options));
      await post("/portal/security/passkeys", {
        csrf_token: csrf,
        name: name,
        credential: registrationJson(credential),
      });
    } catch (err) {
      // Not signed in recently enough to add a factor: sign in again, then come back.
      if (err && err.status === 401) {
        window.location.assign(
          "/login?reauth=1&return_to=" + encodeURIComponent(window.location.pathname),
        );
        return;
      }
      throw err;
    }
    window.location.assign(button.dataset.next || "/portal/security");
  }

  async function signIn(button) {
    const csrf = button.dataset.csrf;
    const step = button.dataset.step;
    const options = await post("/login/passkey/options", { csrf_token: csrf, step: step });
    const credential = await navigator.credentials.get(requestOptions(options));
    const done = await post("/login/passkey", {
      csrf_token: csrf,
      step: step,
      return_to: button.dataset.returnTo || "",
      credential: assertionJson(credential),
    });
    window.location.assign(done.location);
  }

  function wire(action, run) {
    document.querySelectorAll('[data-action="' + action + '"]').forEach(function (button) {
      if (!window.PublicKeyCredential) {
        button.disabled = true;
        say("This browser does not support passkeys.");
        return;
      }
      button.addEventListener("click", function () {
        button.disabled = true;
        run(button)
          .catch(function (err) {
            say(err && err.name === "NotAllowedError"
              ? "The passkey prompt was closed or timed out."
              : (err && err.message) || "Something went wrong.");
          })
          .finally(function () {
            button.disabled = false;
          });
      });
    });
  }

  wire("add-passkey", addPasskey);
  wire("passkey-login", signIn);
})();
