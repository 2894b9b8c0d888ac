// Live size estimate in the audience builder: while the definition is edited, ask the
// preview API (same origin) how many people it selects now. Without JavaScript the
// builder's Check button gives the same answer.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("audience-builder");
  const estimate = document.getElementById("estimate");
  if (!form || !estimate) return;
  const text = form.querySelector("textarea[name=text]");
  const json = form.querySelector("textarea[name=definition]");
  const radio = (value) => form.querySelector(`input[name=source][value=${value}]`);
  let timer = null;
  let sent = 0;

  const element = (tag, content, className) => {
    const node = document.createElement(tag);
    if (content !== undefined) node.textContent = content;
    if (className) node.className = className;
    return node;
  };

  const show = (nodes) => {
    estimate.replaceChildren(...nodes);
  };

  const body = () => {
    if (radio("json").checked) {
      try {
        return { definition: JSON.parse(json.value) };
      } catch (error) {
        return { problem: `definition: not valid JSON (${error.message})` };
      }
    }
    return { text: text.value };
  };

  const update = async () => {
    const request = body();
    if (request.problem) {
      show([element("p", request.problem, "error-text")]);
      return;
    }
    const number = ++sent;
    show([element("p", "Estimating…", "muted")]);
    let response;
    try {
      response = await fetch(form.dataset.preview, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          "X-CSRF-Token": form.dataset.csrf,
        },
        body: JSON.stringify(request),
      });
    } catch (error) {
      if (number === sent) show([element("p", "The estimate is unavailable; use Check.", "muted")]);
      return;
    }
    if (number !== sent) return; // a newer edit is on its way
    const answer = await response.json();
    if (!response.ok) {
      const list = element("ul", undefined, "problems");
      for (const problem of answer.problems || [{ field: "", reason: answer.message }]) {
        const item = element("li");
        item.append(element("code", problem.field), `: ${problem.reason}`);
        list.append(item);
      }
      show([element("p", "The definition has problems:", "error-text"), list]);
      return;
    }
    const line = element("p");
    line.append(element("strong", String(answer.size)), " people match now.");
    line.querySelector("strong").id = "estimate-size";
    const nodes = [line];
    if (answer.sample.length) {
      const list = element("ul", undefined, "small");
      list.id = "estimate-sample";
      for (const member of answer.sample) {
        const traits = Object.entries(member.traits)
          .map(([key, value]) => `${key}=${value}`)
          .join(", ");
        const item = element("li");
        item.append(element("code", member.profile_id), ` ${traits}`);
        list.append(item);
      }
      nodes.push(element("p", "A sample of members:", "muted"), list);
    }
    show(nodes);
  };

  const schedule = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(update, 400);
  };
  text.addEventListener("input", () => {
    radio("text").checked = true;
    schedule();
  });
  json.addEventListener("input", () => {
    radio("json").checked = true;
    schedule();
  });
  for (const input of form.querySelectorAll("input[name=source]")) {
    input.addEventListener("change", schedule);
  }
});
