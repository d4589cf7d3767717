#!/usr/bin/env python3
"""Every public async fn of the library documents its cancel safety (issue 19).

Reads src/ (the library; not the conformance suite, a driver) and lists each
`pub async fn` outside `#[cfg(test)]` code whose doc comment has no `# Cancel safety`
section. Exits 1 when there is one. Run from the repository's root:
python3 .ci/cancel_safety.py
"""
import os, re, sys

skip = ('src/conformance.rs',)
missing, total = [], 0
for d, _, fs in os.walk('src'):
    for f in sorted(fs):
        p = os.path.join(d, f)
        if not p.endswith('.rs') or p.startswith(skip):
            continue
        lines = open(p).read().split('\n')
        in_tests = False
        for i, line in enumerate(lines):
            if re.match(r'\s*mod tests', line) or '#[cfg(test)]' in line:
                in_tests = True
            m = re.match(r'\s*pub async fn (\w+)', line)
            if not m or in_tests:
                continue
            total += 1
            j, doc = i - 1, []
            while j >= 0 and lines[j].strip().startswith(('///', '#[')):
                doc.append(lines[j])
                j -= 1
            if not any('# Cancel safety' in x for x in doc):
                missing.append(f'{p}:{i + 1}: {m.group(1)}')
for m in missing:
    print(f'no "# Cancel safety" section: {m}')
print(f'{total - len(missing)} of {total} public async fns document their cancel safety')
sys.exit(1 if missing else 0)
