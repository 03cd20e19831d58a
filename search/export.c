/* export.c: expressions as PyTorch, NumPy, LaTeX or plain text (in progress). */
