"""The contract between training, export and every client of a .tflite (TensorFlow-free).

Each rule that both sides of the model file must agree on is written once, here, with numpy and
Pillow only, and imported by `train`, `export` and `demo_server`:

- `images`: a file to the model's input pixels (EXIF, colour modes, 16-bit, alpha, resize);
- `tensors`: quantizing the input, dequantizing the output, running an interpreter on pixels;
- `model_file`: the files packed in a .tflite (labels, model card, gate threshold);
- `taxonomy`: the seven diagnosis codes, malignant classes and the PAD-UFES-20 mapping;
- `questionnaire` and `answers`: the optional questions and what answers add (log ratios);
- `screening`: calibration, P(malignant) and the triage rule.
"""
