// orgsso console: copy buttons, IdP presets, the rule editor's add/remove/reorder, and dry-run
// samples. Everything works without it except those conveniences.
'use strict';

function copyButtons() {
  for (const button of document.querySelectorAll('button[data-copy]')) {
    button.addEventListener('click', async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      const text = source.textContent.trim();
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = 'Copied';
      } catch (_) {
        // No clipboard access: select the text so the user can copy it by hand.
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = 'Press Ctrl+C';
      }
      setTimeout(() => { button.textContent = 'Copy'; }, 2000);
    });
  }
}

function presets() {
  const select = document.getElementById('preset');
  if (!select) return;
  select.addEventListener('change', () => {
    const option = select.selectedOptions[0];
    if (!option || !option.value) return;
    const set = (id, value) => {
      const field = document.getElementById(id);
      if (field && value !== undefined) field.value = value;
    };
    set('scopes', option.dataset.scopes);
    set('groups_claim', option.dataset.groups);
    set('scim_link_claim', option.dataset.link);
    const issuer = document.getElementById('issuer');
    if (issuer) issuer.placeholder = option.dataset.issuer;
    const note = document.getElementById('preset-note');
    if (note) note.textContent = `${option.textContent}: issuer like ${option.dataset.issuer}. ${option.dataset.note}`;
  });
}

// private_key_jwt takes no client secret: the field is not required then.
function tokenAuthMethod() {
  const select = document.getElementById('token_auth_method');
  const secret = document.getElementById('client_secret');
  if (!select || !secret) return;
  const required = secret.dataset.required === '1';
  const update = () => {
    const keyOnly = select.value === 'private_key_jwt';
    secret.required = required && !keyOnly;
    secret.disabled = keyOnly;
  };
  select.addEventListener('change', update);
  update();
}

function ruleEditor() {
  const table = document.getElementById('rule-rows');
  const template = document.getElementById('rule-template');
  if (!table || !template) return;
  const body = table.tBodies[0];
  const renumber = () => {
    body.querySelectorAll('tr.rule').forEach((row, i) => {
      const num = row.querySelector('.num');
      if (num) num.textContent = String(i + 1);
    });
  };
  const add = document.getElementById('rule-add');
  if (add) {
    add.addEventListener('click', () => {
      body.appendChild(template.content.cloneNode(true));
      renumber();
      const rows = body.querySelectorAll('tr.rule');
      const value = rows[rows.length - 1].querySelector('input[name=value]');
      if (value) value.focus();
    });
  }
  body.addEventListener('click', (event) => {
    const button = event.target.closest('button');
    const row = button && button.closest('tr.rule');
    if (!row) return;
    if (button.classList.contains('rule-up') && row.previousElementSibling) {
      body.insertBefore(row, row.previousElementSibling);
    } else if (button.classList.contains('rule-down') && row.nextElementSibling) {
      body.insertBefore(row.nextElementSibling, row);
    } else if (button.classList.contains('rule-remove')) {
      row.remove();
    } else {
      return;
    }
    // A moved or removed row's old error no longer describes its place.
    row.querySelectorAll('.rule-error').forEach((e) => e.remove());
    renumber();
  });
}

function samples() {
  const select = document.getElementById('sample');
  const claims = document.getElementById('claims');
  if (!select || !claims) return;
  select.addEventListener('change', () => {
    const option = select.selectedOptions[0];
    if (option && option.dataset.claims) claims.value = option.dataset.claims;
  });
}

function secretFields() {
  const type = document.getElementById('secret-type');
  if (!type) return;
  const show = () => {
    for (const field of document.querySelectorAll('#add-secret [data-for]')) {
      field.hidden = !field.dataset.for.split(' ').includes(type.value);
    }
  };
  type.addEventListener('change', show);
  show();
}

copyButtons();
presets();
ruleEditor();
samples();
secretFields();
tokenAuthMethod();
