"""The offline demo's generated inputs: a chest-radiograph cohort and a small CLIP.

`cohort` writes a synthetic cohort in NIH ChestX-ray14's download layout, from a label model
(`labels`) and procedurally drawn radiographs (`anatomy`, `findings`, `radiograph`) in which each
finding leaves a visual signature, so that a feature extractor has a real but not trivial signal
to learn. `encoder` writes a Transformers CLIP with seeded random weights. Nothing is downloaded.
"""
