"""``python seed_example_runner.py PRELUDE EXAMPLE``: runs the file PRELUDE (what an example of the
seed needs around it: ``from t9k import em``, the ``run`` or ``artifact`` it uses), then the file
EXAMPLE statement by statement as the interactive interpreter runs it: the value of each
expression statement is printed as ``>>> <repr>`` (``em.load_run(...)`` shows the Run it loaded).
The example's own code is not changed; tracebacks name ``example.py`` and its own line numbers."""
from __future__ import annotations

import ast
import sys


def main(prelude_path: str, example_path: str) -> None:
    namespace = {'__name__': '__main__'}
    with open(prelude_path, encoding='utf-8') as f:
        exec(compile(f.read(), prelude_path, 'exec'), namespace)
    with open(example_path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), example_path)
    for node in tree.body:
        if isinstance(node, ast.Expr):
            value = eval(compile(ast.Expression(node.value), example_path, 'eval'), namespace)
            print('>>>', repr(value), flush=True)
        else:
            exec(compile(ast.Module([node], type_ignores=[]), example_path, 'exec'), namespace)


if __name__ == '__main__':
    main(*sys.argv[1:3])
