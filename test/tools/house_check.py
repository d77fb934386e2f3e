#!/usr/bin/env python3
"""The house rules of src/ that a reader can check (issue 26), as `make house-check` runs them:
- no file over 500 lines;
- no C++ function over 60 lines (its body, from the line of its name to its closing brace);
- no include circle among src/'s modules (a module is x.cpp with x.hpp: a module that includes
  another's header depends on it, and calls need declarations, so no include circle means no
  call circle between files);
- no global variable shared between files (an `extern` variable declaration): values are
  passed down, settings read through settings.hpp's accessors.
Function extents come from a small brace scanner that skips comments, strings, character and
raw string literals: enough for this code base's C++, with no tool to install.
Prints each breach; exits 1 if there is one.
"""
import os
import re
import sys

MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'src')


def sources():
    for root, _, files in os.walk(SRC):
        for name in sorted(files):
            if name.endswith(('.cpp', '.hpp')):
                yield os.path.normpath(os.path.join(root, name))


def code_only(text):
    """The text with comments and literals blanked (newlines kept, so line numbers hold)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith('//', i):
            j = text.find('\n', i)
            j = n if j < 0 else j
            out.append(' ' * (j - i)); i = j
        elif text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r'[^\n]', ' ', text[i:j])); i = j
        elif c == 'R' and text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == '_')):
            m = re.match(r'R"([^(\s]*)\(', text[i:])
            end = text.find(')' + m.group(1) + '"', i) if m else -1
            if end < 0:
                out.append(c); i += 1; continue
            j = end + len(m.group(1)) + 2
            out.append('""' + re.sub(r'[^\n]', ' ', text[i + 2:j])); i = j
        elif c in '"\'':
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == '\\' else 1
            out.append(c + ' ' * (j - i - 1) + c); i = j + 1
        else:
            out.append(c); i += 1
    return ''.join(out)


HEAD = re.compile(r'([A-Za-z_][\w:<>~]*)\s*\([^;{}]*\)\s*(const\s*)?(noexcept\s*)?(override\s*)?(->\s*[\w:<>]+\s*)?$')
NOT_FUNCTIONS = {'if', 'for', 'while', 'switch', 'catch', 'return', 'sizeof', 'decltype', 'PG_TRY', 'PG_CATCH'}


def long_functions(path, text):
    """(name, first line, lines) of each function whose body is over the limit."""
    code = code_only(text)
    found, depth, stack = [], 0, []
    for i, c in enumerate(code):
        if c == '{':
            head = code[max(0, i - 400):i]
            head = head[max(head.rfind(';'), head.rfind('}'), head.rfind('{')) + 1:]
            m = HEAD.search(' '.join(head.split()))
            name = m.group(1) if m else None
            if name and name.split('::')[-1] in NOT_FUNCTIONS:
                name = None
            # The function starts at the line of its name.
            start = code.count('\n', 0, i - len(head) + (head.find(name.split('::')[-1]) if name else len(head)))
            stack.append((name, start))
        elif c == '}' and stack:
            name, start = stack.pop()
            if name and not any(n for n, _ in stack if n):  # outermost function only (lambdas count in it)
                lines = code.count('\n', 0, i) - start + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append((name, start + 1, lines))
    return found


EXTERN_VARIABLE = re.compile(r'^\s*extern\s+(?!"C")[\w:<>\s\*&]+?\b(\w+)\s*(\[[^\]]*\])?\s*;', re.M)


def shared_globals(code):
    # Constants (extern const ...) are definitions shared, not values passed.
    return [m.group(1) for m in EXTERN_VARIABLE.finditer(code)
            if '(' not in m.group(0) and not re.match(r'\s*extern\s+const\b', m.group(0))]


def includes(path, text):
    return re.findall(r'^\s*#\s*include\s+"([^"]+)"', text, re.M)


def module(path):
    return os.path.splitext(os.path.relpath(path, SRC))[0]


def circles(graph):
    """Each include circle once, as a list of modules."""
    found, state = [], {}

    def visit(m, trail):
        state[m] = 'open'
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 'open':
                found.append(trail[trail.index(d):] + [d])
            elif d not in state:
                visit(d, trail + [d])
        state[m] = 'done'

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return found


def main():
    breaches, graph = [], {}
    for path in sources():
        text = open(path, encoding='utf-8').read()
        rel = os.path.relpath(path, os.path.join(SRC, '..'))
        lines = text.count('\n')
        if lines > MAX_FILE_LINES:
            breaches.append(f'{rel}: {lines} lines (at most {MAX_FILE_LINES})')
        for name, line, length in long_functions(path, text):
            breaches.append(f'{rel}:{line}: {name} is {length} lines (at most {MAX_FUNCTION_LINES})')
        for name in shared_globals(code_only(text)):
            breaches.append(f'{rel}: extern {name}: a global shared between files')
        here = module(path)
        for inc in includes(path, text):
            target = os.path.normpath(os.path.join(SRC, inc))
            if not os.path.exists(target):
                target = os.path.normpath(os.path.join(os.path.dirname(path), inc))
            if os.path.exists(target) and module(target) != here:
                graph.setdefault(here, set()).add(module(target))
    for c in circles(graph):
        breaches.append('include circle: ' + ' -> '.join(c))
    for b in breaches:
        print(b)
    print(f'house check: {len(breaches)} breach(es)' if breaches else 'house check: ok')
    return 1 if breaches else 0


if __name__ == '__main__':
    sys.exit(main())
