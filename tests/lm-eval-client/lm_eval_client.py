#!/usr/bin/env python3
"""lm-eval's `local-completions` client, reproduced to drive `switchyard serve` in the tests.

lm-evaluation-harness cannot be installed here (PyPI is out of reach), so this file repeats,
step by step, what its client does against an OpenAI-compatible server, from its source
(EleutherAI/lm-evaluation-harness, main of 2026): the names below are lm-eval's own.

- lm_eval/utils.py                  RemoteTokenizer (GET /tokenizer_info, POST /tokenize with
                                     add_special_tokens false, POST /detokenize reading `prompt`),
                                     get_rolling_token_windows, make_disjoint_window
- lm_eval/api/model.py              TemplateLM.loglikelihood, _encode_pair
- lm_eval/models/api_models.py      TemplateAPI: create_message, tok_encode, model_call (3 tries),
                                     _loglikelihood_tokens (sorted longest first, chunks of
                                     batch_size), batch_loglikelihood_requests, generate_until,
                                     loglikelihood_rolling
- lm_eval/models/openai_completions.py  LocalCompletionsAPI._create_payload, parse_logprobs,
                                     parse_generations
- lm_eval/models/utils.py           handle_stop_sequences
- lm_eval/api/task.py               multiple_choice: (ctx, target_delimiter + choice), acc and
                                     acc_norm (log-likelihood / len(choice)); loglikelihood: acc is
                                     is_greedy; generate_until then filters, exact_match

The task side reads the small subset of lm-eval's YAML the fixtures use (json data files,
Jinja templates rendered with jinja2 as lm-eval renders them, zero-shot) and refuses anything
else. Output: one JSON object with the metrics and each item's outcome.

Only the standard library plus requests, jinja2 and yaml (Debian: python3-requests,
python3-jinja2, python3-yaml), as lm-eval itself uses them.
"""
import argparse
import ast
import json
import os
import re
import string
import sys

import jinja2
import requests
import yaml


class RemoteTokenizer:
    def __init__(self, base_url, timeout=60):
        self.base_url = base_url.replace("/v1/completions", "").replace("/v1/chat/completions", "").rstrip("/")
        self.session = requests.Session()
        self.session.headers.update({"Content-Type": "application/json"})
        self.timeout = timeout
        self.tokenizer_info = self._request("GET", f"{self.base_url}/tokenizer_info").json()

    def _request(self, method, url, **kwargs):
        last = None
        for _ in range(3):
            try:
                resp = self.session.request(method, url, timeout=self.timeout, **kwargs)
                resp.raise_for_status()
                return resp
            except requests.RequestException as e:
                last = e
        raise RuntimeError(f"RemoteTokenizer: {method} {url} failed after 3 attempts: {last}")

    @property
    def eos_token(self):
        return self.tokenizer_info.get("eos_token")

    @property
    def eos_token_id(self):
        eos = self.eos_token
        return None if eos is None else self.encode(eos)[0]

    @property
    def bos_token_id(self):
        bos = self.tokenizer_info.get("bos_token")
        return None if bos is None else self.encode(bos)[0]

    def encode(self, text):
        tokens = self._request("POST", f"{self.base_url}/tokenize", json={"prompt": text, "add_special_tokens": False}).json().get("tokens")
        if not isinstance(tokens, list):
            raise RuntimeError("Malformed response from /tokenize endpoint.")
        return tokens

    def decode(self, tokens):
        prompt = self._request("POST", f"{self.base_url}/detokenize", json={"tokens": tokens}).json().get("prompt")
        if not isinstance(prompt, str):
            raise RuntimeError("Malformed response from /detokenize endpoint.")
        return prompt

    def batch_decode(self, tokens_list):
        return [self.decode(t) for t in tokens_list]


def chunks(items, n):
    for i in range(0, len(items), n):
        yield items[i:i + n]


def get_rolling_token_windows(token_list, prefix_token, max_seq_len, context_len):
    assert 1 <= context_len <= max_seq_len
    if not token_list:
        return
    pred_len = max_seq_len - context_len + 1
    predicted = 0
    first_seq_len = min(max_seq_len, len(token_list))
    yield [prefix_token] + token_list[: first_seq_len - 1], token_list[:first_seq_len]
    predicted += first_seq_len
    while predicted < len(token_list):
        window_pred_len = min(len(token_list) - predicted, pred_len)
        window_end = predicted + window_pred_len
        yield token_list[window_end - max_seq_len - 1: window_end - 1], token_list[window_end - window_pred_len: window_end]
        predicted += window_pred_len


def make_disjoint_window(pair):
    a, b = pair
    return a[: len(a) - (len(b) - 1)], b


def handle_stop_sequences(until, eos):
    if isinstance(until, str):
        until = [until]
    elif until is None:
        until = []
    if eos is not None and eos not in until:
        until.append(eos)
    return until


def check_remote_tokenizer_support(base_url):
    """lm-eval's tokenizer_backend="auto": remote when /tokenizer_info names eos_token and /tokenize answers."""
    base = base_url.replace("/v1/completions", "").replace("/v1/chat/completions", "").rstrip("/")
    try:
        info = requests.get(f"{base}/tokenizer_info", timeout=5)
        info.raise_for_status()
        if not isinstance(info.json(), dict) or "eos_token" not in info.json():
            return False
        tok = requests.post(f"{base}/tokenize", json={"prompt": "test", "add_special_tokens": False}, timeout=5)
        tok.raise_for_status()
        return isinstance(tok.json().get("tokens"), list)
    except requests.RequestException:
        return False


class LocalCompletionsAPI:
    def __init__(self, base_url, model, batch_size=1, tokenized_requests=True, max_length=2048, max_gen_toks=256, seed=1234):
        self.base_url = base_url
        self.model = model
        self._batch_size = int(batch_size)
        self.tokenized_requests = tokenized_requests
        self.max_length = max_length - 1  # "max_length - 1 as we always have 1 token for generation"
        self._max_gen_toks = max_gen_toks
        self._seed = seed
        if not check_remote_tokenizer_support(base_url):
            raise SystemExit("the server does not offer a remote tokenizer: lm-eval would fall back to Hugging Face's")
        self.tokenizer = RemoteTokenizer(base_url)
        self.requests_sent = 0

    # TemplateAPI properties
    @property
    def eot_token_id(self):
        return self.tokenizer.eos_token_id

    @property
    def eos_string(self):
        return self.tokenizer.eos_token

    @property
    def prefix_token_id(self):
        return self.tokenizer.bos_token_id or self.tokenizer.eos_token_id

    def tok_encode(self, string, **kwargs):
        if isinstance(string, str):
            return self.tokenizer.encode(string)
        return [self.tokenizer.encode(s) for s in string]

    def create_message(self, messages):
        if not self.tokenized_requests:
            if isinstance(messages[0][0], int):
                messages = self.tokenizer.batch_decode(messages)
            if self._batch_size <= 1:
                return messages[0]
            return messages
        return messages

    def _create_payload(self, messages, generate=False, gen_kwargs=None, seed=1234, eos=None):
        if generate:
            gen_kwargs.pop("do_sample", False)
            max_tokens = gen_kwargs.pop("max_tokens") if "max_tokens" in gen_kwargs else gen_kwargs.pop("max_gen_toks", self._max_gen_toks)
            temperature = gen_kwargs.pop("temperature", 0)
            stop = handle_stop_sequences(gen_kwargs.pop("until", None), eos)
            return {"prompt": messages, "model": self.model, "max_tokens": max_tokens, "temperature": temperature, "stop": stop, "seed": seed, **gen_kwargs}
        return {"model": self.model, "prompt": messages, "temperature": 0, "max_tokens": 1, "logprobs": 1, "seed": seed, "echo": True}

    def model_call(self, messages, generate=True, gen_kwargs=None):
        gen_kwargs = json.loads(json.dumps(gen_kwargs)) if gen_kwargs is not None else None
        payload = self._create_payload(self.create_message(messages), generate=generate, gen_kwargs=gen_kwargs, seed=self._seed, eos=self.eos_string)
        last = None
        for _ in range(3):  # tenacity: stop_after_attempt(max_retries=3)
            self.requests_sent += 1
            response = requests.post(self.base_url, json=payload, headers={"Authorization": "Bearer "}, timeout=300)
            if response.ok:
                return response.json()
            last = f"{response.status_code} {response.text}"
        raise RuntimeError(f"API request failed after 3 attempts: {last}")

    @staticmethod
    def parse_logprobs(outputs, ctxlens):
        res = []
        if not isinstance(outputs, list):
            outputs = [outputs]
        for out in outputs:
            for choice, ctxlen in zip(sorted(out["choices"], key=lambda c: c["index"]), ctxlens):
                assert ctxlen > 0, "Context length must be greater than 0"
                logprobs = sum(choice["logprobs"]["token_logprobs"][ctxlen:-1])
                tokens_logprobs = choice["logprobs"]["token_logprobs"][ctxlen:-1]
                top_logprobs = choice["logprobs"]["top_logprobs"][ctxlen:-1]
                is_greedy = True
                for tok, top in zip(tokens_logprobs, top_logprobs):
                    if tok != max(top.values()):
                        is_greedy = False
                        break
                res.append((logprobs, is_greedy))
        return res

    @staticmethod
    def parse_generations(outputs):
        res = []
        if not isinstance(outputs, list):
            outputs = [outputs]
        for out in outputs:
            tmp = [None] * len(out["choices"])
            for choice in out["choices"]:
                tmp[choice["index"]] = choice["text"]
            res = res + tmp
        return res

    # TemplateLM
    def _encode_pair(self, context, continuation):
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces > 0:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole_enc = self.tok_encode(context + continuation)
        context_enc = self.tok_encode(context)
        return context_enc, whole_enc[len(context_enc):]

    def loglikelihood(self, requests_):
        new_reqs = []
        for context, continuation in requests_:
            if context == "":
                continuation_enc = self.tok_encode(continuation)
                context_enc, continuation_enc = (
                    ([self.prefix_token_id], continuation_enc)
                    if self.prefix_token_id != continuation_enc[0]
                    else (continuation_enc[:1], continuation_enc[1:])
                )
            else:
                context_enc, continuation_enc = self._encode_pair(context, continuation)
            new_reqs.append(((context, continuation), context_enc, continuation_enc))
        return self._loglikelihood_tokens(new_reqs)

    def _loglikelihood_tokens(self, reqs):
        # Collator: longest first (ties by the tokens), answers put back in the original order.
        order = sorted(range(len(reqs)), key=lambda i: (-len(reqs[i][1] + reqs[i][2]), tuple(reqs[i][1] + reqs[i][2])))
        res = [None] * len(reqs)
        for chunk in chunks(order, self._batch_size):
            inputs, ctxlens = [], []
            for i in chunk:
                _, context_enc, continuation_enc = reqs[i]
                inp = (context_enc + continuation_enc)[-self.max_length:]
                ctxlen = len(context_enc) - max(0, len(context_enc) + len(continuation_enc) - self.max_length)
                inputs.append(inp)
                ctxlens.append(ctxlen)
            outputs = self.model_call(messages=inputs, generate=False)
            for i, answer in zip(chunk, self.parse_logprobs(outputs, ctxlens)):
                res[i] = answer
        return res

    def loglikelihood_rolling(self, strings):
        out = []
        for string in strings:
            windows = [(None,) + make_disjoint_window(w) for w in get_rolling_token_windows(
                token_list=self.tok_encode(string), prefix_token=self.prefix_token_id, max_seq_len=self.max_length - 1, context_len=1)]
            out.append(sum(ll for ll, _ in self._loglikelihood_tokens(windows)))
        return out

    def generate_until(self, requests_):
        contexts_all = [c for c, _ in requests_]
        gen_kwargs_all = [g for _, g in requests_]
        encodings_all = self.tok_encode(contexts_all) if self.tokenized_requests else [None] * len(requests_)
        # Collator with group_by gen_kwargs: longest context text first within each group.
        groups = {}
        for i, g in enumerate(gen_kwargs_all):
            groups.setdefault(json.dumps(g, sort_keys=True), []).append(i)
        res = [None] * len(requests_)
        for members in groups.values():
            members.sort(key=lambda i: -len(contexts_all[i]))
            for chunk in chunks(members, self._batch_size):
                gen_kwargs = gen_kwargs_all[chunk[0]]
                if self.tokenized_requests:
                    max_context_len = self.max_length - gen_kwargs.get("max_gen_toks", self._max_gen_toks)
                    req = [encodings_all[i][-max_context_len:] for i in chunk]
                else:
                    req = [contexts_all[i] for i in chunk]
                outputs = self.model_call(messages=req, generate=True, gen_kwargs=gen_kwargs)
                for i, text in zip(chunk, self.parse_generations(outputs)):
                    res[i] = text
        return res


# The task side: lm-eval's ConfigurableTask for the fixtures' subset of its YAML.

# lm_eval/utils.py: Environment(loader=BaseLoader, undefined=StrictUndefined, keep_trailing_newline=True)
ENV = jinja2.Environment(loader=jinja2.BaseLoader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def apply_template(template, doc):
    return ENV.from_string(template).render(**doc)


# ConfigurableTask.doc_to_text / doc_to_target / doc_to_choice, for YAML (string or int) settings.
def doc_to_text(config, doc):
    t = config.get("doc_to_text")
    if isinstance(t, int):
        return t
    if t in doc:
        return doc[t]
    text = apply_template(t, doc)
    return ast.literal_eval(text) if text.isdigit() and config.get("doc_to_choice") is not None else text


def doc_to_target(config, doc):
    t = config.get("doc_to_target")
    if isinstance(t, (int, list)):
        return t
    if t in doc:
        return doc[t]
    text = apply_template(t, doc)
    if text.isdigit() and config.get("doc_to_choice") is not None:
        return ast.literal_eval(text)
    if len(text) >= 2 and text[0] == "[" and text[-1] == "]":
        try:
            return ast.literal_eval(text)
        except (SyntaxError, ValueError):
            return text
    return text


def doc_to_choice(config, doc):
    t = config["doc_to_choice"]
    if isinstance(t, list):
        return t
    if isinstance(t, dict):
        return list(t.values())
    if t in doc:
        return doc[t]
    return ast.literal_eval(apply_template(t, doc))


def read_config(path):
    with open(path) as f:
        config = yaml.safe_load(f)
    if "include" in config:  # lm-eval's include: the included file's keys, this file's winning
        base = read_config(os.path.join(os.path.dirname(os.path.abspath(path)), config.pop("include")))
        base.update(config)
        config = base
    return config


def load_task(path, data_dir):
    config = read_config(path)
    for key in ("process_docs", "process_results"):
        if key in config:
            raise SystemExit(f"{path}: '{key}' is not read by this client")
    if config.get("num_fewshot", 0):
        raise SystemExit(f"{path}: only zero-shot tasks are read by this client")
    files = config["dataset_kwargs"]["data_files"]
    split = config.get("test_split") or config.get("validation_split")
    file = files[split] if isinstance(files, dict) else files
    file = os.path.join(data_dir, file)
    with open(file, encoding="utf-8") as f:
        if config["dataset_path"] == "json":
            docs = [json.loads(line) for line in f if line.strip()]
        elif config["dataset_path"] == "text" and config["dataset_kwargs"].get("sample_by") == "paragraph":
            # datasets' text loader, sample_by="paragraph": split on blank lines, empty ones dropped
            docs = [{"text": t} for t in f.read().split("\n\n") if t]
        else:
            raise SystemExit(f"{path}: dataset_path {config['dataset_path']} is not read by this client")
    return config, docs


def exact_match(prediction, reference, ignore_case=False, ignore_punctuation=False):
    # Hugging Face evaluate's exact_match, as lm-eval calls it
    if ignore_case:
        prediction, reference = prediction.lower(), reference.lower()
    if ignore_punctuation:
        table = str.maketrans("", "", string.punctuation)
        prediction, reference = prediction.translate(table), reference.translate(table)
    return float(prediction == reference)


def regex_filter(text, pattern, group_select=0, fallback="[invalid]"):
    matches = re.findall(pattern, text)
    if not matches:
        return fallback
    match = matches[group_select]
    if isinstance(match, tuple):
        match = [m for m in match if m]
        match = match[0] if match else fallback
    return match.strip()


def evaluate(lm, config, docs):
    output_type = config["output_type"]
    delim = config.get("target_delimiter", " ")
    items = []
    if output_type == "multiple_choice":
        reqs, spans = [], []
        for doc in docs:
            ctx = doc_to_text(config, doc)
            choices = doc_to_choice(config, doc)
            spans.append((len(reqs), choices))
            reqs += [(ctx, f"{delim}{c}") for c in choices]
        results = lm.loglikelihood(reqs)
        for doc, (start, choices) in zip(docs, spans):
            lls = [results[start + k][0] for k in range(len(choices))]
            gold = doc_to_target(config, doc)
            if isinstance(gold, str):
                gold = choices.index(gold)
            pred = max(range(len(lls)), key=lambda k: lls[k])  # np.argmax: the first of equals
            pred_norm = max(range(len(lls)), key=lambda k: lls[k] / float(len(choices[k])))
            items.append({"acc": float(pred == gold), "acc_norm": float(pred_norm == gold), "lls": lls})
    elif output_type == "loglikelihood":
        reqs = [(doc_to_text(config, d), doc_to_target(config, d)) for d in docs]
        for ll, greedy in lm.loglikelihood(reqs):
            items.append({"acc": float(greedy), "ll": ll})
    elif output_type == "loglikelihood_rolling":
        for ll in lm.loglikelihood_rolling([doc_to_target(config, d) for d in docs]):
            items.append({"ll": ll})
    elif output_type == "generate_until":
        gen_kwargs = dict(config.get("generation_kwargs", {}))
        if "until" not in gen_kwargs:
            gen_kwargs["until"] = [config.get("fewshot_delimiter", "\n\n")]
        outs = lm.generate_until([(doc_to_text(config, d), gen_kwargs) for d in docs])
        for doc, out in zip(docs, outs):
            for flt in config.get("filter_list", [{"filter": [{"function": "take_first"}]}])[0]["filter"]:
                if flt["function"] == "regex":
                    out = regex_filter(out, flt["regex_pattern"], flt.get("group_select", 0), flt.get("fallback", "[invalid]"))
                elif flt["function"] != "take_first":
                    raise SystemExit(f"filter {flt['function']} is not read by this client")
            target = str(doc_to_target(config, doc))
            options = next((m for m in config.get("metric_list", []) if m["metric"] == "exact_match"), {})
            score = exact_match(out, target, options.get("ignore_case", False), options.get("ignore_punctuation", False))
            items.append({"exact_match": score, "output": out})
    else:
        raise SystemExit(f"output_type {output_type} is not read by this client")
    metrics = {}
    for key in ("acc", "acc_norm", "exact_match"):
        if items and key in items[0]:
            metrics[key] = sum(i[key] for i in items) / len(items)
    return metrics, items


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base-url", required=True, help="http://HOST:PORT/v1/completions")
    p.add_argument("--model", default="")
    p.add_argument("--task", help="an lm-eval YAML task (the fixtures' subset)")
    p.add_argument("--data", default=os.environ.get("SWITCHYARD_DATA_DIR", "../shared") + "/data", help="the folder the task's data_files are in")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--text", action="store_true", help="tokenized_requests=False: send text prompts")
    p.add_argument("--rolling", help="a text file: loglikelihood_rolling of each paragraph")
    p.add_argument("--max-length", type=int, default=2048, help="lm-eval's max_length model argument (its default 2048)")
    a = p.parse_args()
    lm = LocalCompletionsAPI(a.base_url, a.model, a.batch_size, tokenized_requests=not a.text, max_length=a.max_length)
    if a.rolling:
        with open(a.rolling) as f:
            paragraphs = [t for t in f.read().split("\n\n") if t.strip()][: a.limit or None]
        lls = lm.loglikelihood_rolling(paragraphs)
        json.dump({"items": [{"ll": ll} for ll in lls], "requests": lm.requests_sent}, sys.stdout)
        return
    config, docs = load_task(a.task, a.data)
    if a.limit:
        docs = docs[: a.limit]
    metrics, items = evaluate(lm, config, docs)
    json.dump({"task": config.get("task"), "n": len(docs), "metrics": metrics, "items": items, "requests": lm.requests_sent}, sys.stdout)


if __name__ == "__main__":
    main()
