// huaxing pages: drag-and-drop search and batch checks, the registration desk's actions.
// Plain JavaScript, no build step; every request goes to the JSON API with the session cookie.
"use strict";
(function () {
  var words = JSON.parse(document.getElementById("hx-words").textContent);
  var BATCH_CHUNK = 8;

  function el(tag, attributes, children) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (key) {
      if (key === "text") node.textContent = attributes[key];
      else node.setAttribute(key, attributes[key]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  // Resolves to the JSON answer, or rejects with the service's message in words.
  function api(path, options) {
    return fetch(path, Object.assign({credentials: "same-origin"}, options)).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) {
          var message = body && body.error ? body.error.message : response.status + " " + response.statusText;
          throw new Error(message);
        }
        return body;
      });
    });
  }

  function verdict(match) {
    return el("span", {"class": "verdict" + (match.copy ? " copy" : ""), text: match.copy ? words.copy : words.not_copy});
  }

  function matchCard(match, file) {
    var compare = null;
    if (file && document.body.dataset.canCompare === "true") {
      compare = el("button", {type: "button", text: words.compare_with});
      compare.addEventListener("click", function () { openReport(file, match.id); });
    }
    return el("li", {"class": "result"}, [
      el("a", {href: "/patterns/" + match.id}, [el("img", {src: "/api/v1/patterns/" + match.id + "/thumbnail", alt: match.title || match.registration_number, loading: "lazy"})]),
      el("div", {}, [
        el("a", {href: "/patterns/" + match.id, text: match.title || match.registration_number}),
        el("div", {text: match.registration_number}),
        el("div", {}, [document.createTextNode(words.score + " " + match.score.toFixed(2) + " "), verdict(match)]),
        match.note ? el("div", {"class": "help", text: match.note}) : null,
        compare
      ])
    ]);
  }

  // Posts the upload and a registered id to the report page, which the browser then shows.
  function openReport(file, registeredId) {
    var form = el("form", {method: "post", action: "/compare/report", enctype: "multipart/form-data", hidden: ""});
    var input = el("input", {type: "file", name: "a"});
    var transfer = new DataTransfer();
    transfer.items.add(file);
    input.files = transfer.files;
    form.appendChild(input);
    form.appendChild(el("input", {type: "hidden", name: "b_id", value: registeredId}));
    document.body.appendChild(form);
    form.submit();
  }

  function searchOne(file, status, results) {
    status.textContent = words.searching;
    var body = new FormData();
    body.append("image", file, file.name);
    return api("/api/v1/search?k=10", {method: "POST", body: body}).then(function (answer) {
      status.textContent = "";
      results.replaceChildren();
      if (!answer.matches.length) {
        results.appendChild(el("p", {text: words.no_match}));
        return;
      }
      results.appendChild(el("ul", {"class": "results", id: "matches"}, answer.matches.map(function (m) { return matchCard(m, file); })));
    });
  }

  function searchBatch(files, status, progress, results) {
    var rows = [];
    var table = el("table", {"class": "batch", id: "batch"}, [
      el("tr", {}, [words.file, words.best_match, words.registration_number, words.score, words.verdict].map(function (h) { return el("th", {scope: "col", text: h}); }))
    ]);
    var csv = el("button", {type: "button", text: words.export_csv, disabled: ""});
    results.replaceChildren(csv, table);
    progress.hidden = false;
    progress.max = files.length;
    progress.value = 0;
    var chunks = [];
    for (var i = 0; i < files.length; i += BATCH_CHUNK) chunks.push(files.slice(i, i + BATCH_CHUNK));
    var done = 0;
    function report() { status.textContent = words.checked + " " + done + " " + words.of + " " + files.length; }
    report();
    return chunks.reduce(function (previous, chunk) {
      return previous.then(function () {
        var body = new FormData();
        chunk.forEach(function (file) { body.append("image", file, file.name); });
        return api("/api/v1/search/batch?k=1", {method: "POST", body: body}).then(function (answer) {
          answer.results.forEach(function (result, index) {
            var file = chunk[index];
            var best = result.matches[0];
            var row = {file: file.name, title: best ? best.title : "", number: best ? best.registration_number : "",
                       score: best ? best.score.toFixed(3) : "", verdict: result.error ? words.error + ": " + result.error.message : best && best.copy ? words.copy : words.not_copy};
            rows.push(row);
            table.appendChild(el("tr", {}, [
              el("td", {text: row.file}),
              el("td", {}, [best ? el("a", {href: "/patterns/" + best.id, text: row.title || row.number}) : document.createTextNode("")]),
              el("td", {text: row.number}), el("td", {text: row.score}),
              el("td", {}, [best && !result.error ? verdict(best) : document.createTextNode(row.verdict)])
            ]));
          });
          done += chunk.length;
          progress.value = done;
          report();
        });
      });
    }, Promise.resolve()).then(function () {
      csv.disabled = false;
      csv.addEventListener("click", function () { download(rows); });
    });
  }

  function download(rows) {
    var quote = function (text) { return "\"" + String(text).replace(/"/g, "\"\"") + "\""; };
    var lines = [["file", "best_match", "registration_number", "score", "verdict"].join(",")].concat(rows.map(function (r) {
      return [r.file, r.title, r.number, r.score, r.verdict].map(quote).join(",");
    }));
    var link = el("a", {href: URL.createObjectURL(new Blob([lines.join("\r\n") + "\r\n"], {type: "text/csv"})), download: "huaxing-batch.csv"});
    document.body.appendChild(link);
    link.click();
    link.remove();
  }

  function failed(status) {
    return function (error) {
      status.replaceChildren(el("span", {"class": "error", role: "alert", text: words.error + ": " + error.message}));
    };
  }

  // A drop zone hands dropped files to the form's file input, as if chosen.
  document.querySelectorAll("[data-drop]").forEach(function (zone) {
    var input = zone.querySelector("input[type=file]");
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      var transfer = new DataTransfer();
      Array.prototype.forEach.call(event.dataTransfer.files, function (file) { transfer.items.add(file); });
      if (!input.multiple && transfer.files.length > 1) return;
      input.files = transfer.files;
      input.dispatchEvent(new Event("change", {bubbles: true}));
    });
  });

  var searchFiles = document.getElementById("search-files");
  if (searchFiles) {
    var status = document.getElementById("search-status");
    var progress = document.getElementById("search-progress");
    var results = document.getElementById("search-results");
    searchFiles.addEventListener("change", function () {
      var files = Array.prototype.slice.call(searchFiles.files);
      progress.hidden = true;
      if (!files.length) return;
      var work = files.length === 1 ? searchOne(files[0], status, results) : searchBatch(files, status, progress, results);
      work.catch(failed(status));
    });
  }

  var registerForm = document.getElementById("register-form");
  if (registerForm) {
    var registerResult = document.getElementById("register-result");
    registerForm.addEventListener("submit", function (event) {
      event.preventDefault();
      registerResult.textContent = words.working;
      var file = registerForm.elements.image.files[0];
      api("/api/v1/patterns", {method: "POST", body: new FormData(registerForm)}).then(function (record) {
        var held = record.status === "pending_review";
        registerResult.replaceChildren(
          el("p", {}, [document.createTextNode((held ? words.held : words.registered_ok) + " "),
                       el("a", {href: "/patterns/" + record.id, text: record.registration_number + " " + record.title})]),
          record.duplicates.length ? el("ul", {"class": "results"}, record.duplicates.map(function (m) { return matchCard(m, file); })) : null);
      }).catch(failed(registerResult));
    });
  }

  document.querySelectorAll("form.decision").forEach(function (form) {
    var result = document.getElementById("decision-result");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var status = event.submitter ? event.submitter.value : "registered";
      api("/api/v1/patterns/" + form.dataset.id + "/status", {
        method: "POST", headers: {"content-type": "application/json"},
        body: JSON.stringify({status: status, reason: form.elements.reason.value})
      }).then(function (record) {
        result.textContent = words.done + ": " + record.registration_number + " → " + record.status;
        form.closest("li").remove();
      }).catch(failed(result));
    });
  });

  var publicDomain = document.getElementById("public-domain-form");
  if (publicDomain) {
    var publicResult = document.getElementById("public-domain-result");
    publicDomain.addEventListener("submit", function (event) {
      event.preventDefault();
      api("/api/v1/patterns/" + encodeURIComponent(publicDomain.elements.id.value.trim()) + "/status", {
        method: "POST", headers: {"content-type": "application/json"},
        body: JSON.stringify({status: "public_domain", reason: publicDomain.elements.reason.value})
      }).then(function (record) {
        publicResult.textContent = words.done + ": " + record.registration_number + " → " + record.status;
      }).catch(failed(publicResult));
    });
  }
})();
