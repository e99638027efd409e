"""Independent check that the bundled demo models are ordinary Hugging Face checkpoints.

Loads models/demo/<name> with transformers (AutoModelForCausalLM, AutoTokenizer: no ProxyOrleans code) and
writes, per model, the token ids of a few prompts (plain and through apply_chat_template) and the logits at
every position, plus greedy proxy-tuned answers (base-large + tuned-small - base-small, expert through the
chat template) for a few questions. `dotnet run --project src/Training -- hfcompare <file>` compares them with
our TorchSharp models, tokenizer and ProxyDecoder.
Usage: python3 scripts/hf_crosscheck.py models/demo out.json [questions.json]
"""
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

demo, out = sys.argv[1], sys.argv[2]
names = ["base-small", "base-large", "tuned-small", "tuned-large"]
prompts = ["Where does Alice Abbott live?", "What is 23 + 18?", "How tall is Bruno Baker?"]
questions = json.load(open(sys.argv[3])) if len(sys.argv) > 3 else prompts
res = {"transformers": __import__("transformers").__version__, "torch": torch.__version__, "models": {}, "proxy": []}
models, toks = {}, {}
for n in names:
    tok = AutoTokenizer.from_pretrained(f"{demo}/{n}")
    try:
        m = AutoModelForCausalLM.from_pretrained(f"{demo}/{n}", dtype=torch.float32).eval()
    except TypeError:
        m = AutoModelForCausalLM.from_pretrained(f"{demo}/{n}", torch_dtype=torch.float32).eval()
    models[n], toks[n] = m, tok
    entry = {"class": type(m).__name__, "cases": []}
    for p in prompts:
        for chat in (False, True):
            ids = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=True) if chat \
                else tok(p, add_special_tokens=True)["input_ids"]
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
            with torch.no_grad():
                logits = m(torch.tensor([ids])).logits[0]
            entry["cases"].append({"prompt": p, "chat": chat, "ids": list(map(int, ids)), "logits": logits.tolist()})
    res["models"][n] = entry

def greedy_proxy(q, max_new=16, alpha=1.0):
    tok = toks["base-large"]
    plain = tok(q)["input_ids"]
    chat = toks["tuned-small"].apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True)
    if isinstance(chat, dict) or hasattr(chat, "input_ids"):
        chat = chat["input_ids"]
    b, e, a, out_ids = list(plain), list(chat), list(plain), []
    eos = set(models["base-large"].config.eos_token_id if isinstance(models["base-large"].config.eos_token_id, list) else [models["base-large"].config.eos_token_id])
    for _ in range(max_new):
        with torch.no_grad():
            lb = models["base-large"](torch.tensor([b])).logits[0, -1]
            le = models["tuned-small"](torch.tensor([e])).logits[0, -1]
            la = models["base-small"](torch.tensor([a])).logits[0, -1]
        t = int(torch.argmax(lb + alpha * (le - la)))
        out_ids.append(t)
        if t in eos:
            break
        b.append(t); e.append(t); a.append(t)
    return out_ids, tok.decode(out_ids, skip_special_tokens=True)

for q in questions:
    ids, text = greedy_proxy(q)
    res["proxy"].append({"prompt": q, "ids": ids, "text": text})
json.dump(res, open(out, "w"))
print("ok", {n: res["models"][n]["class"] for n in names}, [p["text"] for p in res["proxy"]][:5])
