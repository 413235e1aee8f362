"""The contract between training, export and every client of a .tflite (TensorFlow-free).

Each rule that two stages must agree on is written once, here, with numpy and Pillow (scipy for
one bound), and imported by `train`, `export` and `demo_server`; no stage imports another:

- `images`: a file to the model's input pixels (EXIF, colour modes, 16-bit, alpha, resize);
- `tensors`: quantizing the input, dequantizing the output, running an interpreter on pixels;
- `interpreter`: a .tflite run over decoded pixels with LiteRT (imported when used);
- `model_file`: the files packed in a .tflite (labels, model card, gate threshold);
- `card`: the model card, typed (`ModelCard`), the only way a card is read or written;
- `predictions` and `bench_report`: an evaluation's predictions.csv and export.bench's
  bench.json; `jsonclass`: dataclasses as JSON files (the card, the benchmark report);
- `taxonomy`: the seven diagnosis codes, malignant classes and the PAD-UFES-20 mapping;
- `questionnaire` and `answers`: the optional questions and what answers add (log ratios);
- `screening`: the fitted temperature applied, P(malignant) and the triage rule;
- `metrics`: how predictions are scored (balanced accuracy, AUC, sensitivity, ECE, Dice);
- `bootstrap`: intervals by drawing whole lesions / patients (metrics, paired differences, the
  triage threshold whose sensitivity holds);
- `records`: labelled images, decoded into model inputs, unreadable ones reported;
- `run_folder`: a run folder's files (split.csv, model_card.json, model.keras) and its check;
- `lesion_gate` and `segmenter_run`: what the gate's and the segmenter's training leave for
  export, and the gate's rules both apply;
- `framing` and `segmentation`: the crop around a found lesion and the segmenter file's JSON;
- `commands`: what every command line shares: comma-separated lists, and the error a command
  reports as a usage message (`CommandError`).
"""
