"""The README quick start, runnable as is: read and edit SmolLM2's internals."""

from lenslab import LanguageModel

model = LanguageModel("smollm2")  # SmolLM2-135M-Instruct, bundled; converted once, then cached
prompt = "The Eiffel Tower is located in the city of"

with model.trace(prompt):
    hidden = model.model.layers[15].output.save()  # a real tensor: (batch, seq, 576)
    logits = model.output.logits.save()

print("layer 15 output:", tuple(hidden.shape))
print("next token:", repr(model.tokenizer.decode(logits[0, -1].argmax())))

# Edit inside the forward pass: silence every MLP at the last position.
with model.trace(prompt):
    for layer in model.model.layers:
        layer.mlp.output[:, -1] = 0
    edited = model.output.logits.save()

print("without MLPs:", repr(model.tokenizer.decode(edited[0, -1].argmax())))

# Two prompts, one batched forward: patch the first prompt's late state into the second.
with model.trace() as tracer:
    with tracer.invoke("The Colosseum is located in the city of"):
        rome = model.model.layers[26].output[:, -1].save()
    with tracer.invoke(prompt):
        model.model.layers[26].output[:, -1] = rome
        patched = model.output.logits[0, -1].save()

print("patched:", repr(model.tokenizer.decode(patched.argmax())))
