#!/usr/bin/env python3
"""Import cycles between the library's files (issue 19: none may remain).

Reads src/ (the library; not the conformance suite, a driver), takes every
`crate::…` and `super::…` path in code (comments and `#[cfg(test)] mod tests` left out) as
an edge from the file to the module it names, and prints each cycle of two or more files
(strongly connected component). A parent using its own child modules by relative path
(`mod chain;`, `chain::VersionChain`) is not counted. Exits 1 when there is a cycle.
Run from the repository's root: python3 .ci/import_cycles.py
"""
import os,re,sys
root='src'
skip=('src/conformance',)
files={}
for d,_,fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'):
            p=os.path.join(d,f)
            if p.startswith(skip): continue
            files[p]=open(p).read()
def modpath(p):
    m=p[len('src/'):-3]
    if m.endswith('/mod'): m=m[:-4]
    if m=='lib': return ''
    return m.replace('/','::')
mods={modpath(p):p for p in files}
def resolve(path):
    parts=path.split('::')
    for i in range(len(parts),0,-1):
        cand='::'.join(parts[:i])
        if cand in mods: return cand
    return None
edges={m:set() for m in mods}
for p,src in files.items():
    m=modpath(p)
    code='\n'.join(l for l in src.split('\n') if not l.strip().startswith('//'))
    # strip #[cfg(test)] mod tests blocks roughly: cut at "#[cfg(test)]\nmod tests"
    i=code.find('#[cfg(test)]\nmod tests')
    if i>=0: code=code[:i]
    def expand(code,kw):
        refs=re.findall(kw+r'::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)',code)
        for grp in re.findall(kw+r'::\{([^}]*)\}',code, flags=re.S):
            for item in grp.split(','):
                item=item.strip().split(' ')[0]
                if not item: continue
                head=item.split('::{')[0]
                if '::' in head or (head[0].islower() and not head.endswith(')')):
                    refs.append(head)
                else:
                    refs.append('__SELF__')
        return refs
    for ref in expand(code,'crate'):
        if ref=='__SELF__': continue
        r=resolve(ref)
        if r is not None and r!=m and r!='': edges[m].add(r)
    # super:: references
    parent='::'.join(m.split('::')[:-1]) if not p.endswith('mod.rs') else '::'.join(m.split('::')[:-1])
    base=m if p.endswith('mod.rs') else parent
    for ref in expand(code,'super'):
        if ref=='__SELF__':
            sup=parent if not p.endswith('mod.rs') else '::'.join(m.split('::')[:-1])
            if sup and sup!=m: edges[m].add(sup)
            continue
        full=((parent+'::') if parent else '')+ref if not p.endswith('mod.rs') else (('::'.join(m.split('::')[:-1])+'::') if '::' in m else '')+ref
        r=resolve(full)
        if r is not None and r!=m and r!='': edges[m].add(r)
# SCCs
index={};low={};st=[];on=set();out=[];c=[0]
sys.setrecursionlimit(10000)
def sc(v):
    index[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
    for w in edges[v]:
        if w not in index: sc(w);low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],index[w])
    if low[v]==index[v]:
        comp=[]
        while True:
            w=st.pop();on.discard(w);comp.append(w)
            if w==v:break
        if len(comp)>1: out.append(sorted(comp))
for v in edges:
    if v not in index: sc(v)
for comp in out:
    print("import cycle between files:", ", ".join(comp))
print("error.rs uses:", ", ".join(sorted(edges.get('error', []))))
sys.exit(1 if out else 0)
