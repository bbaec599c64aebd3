"""What per-64-KiB-chunk compression of an encrypted remote would save (zstd level 3, lz4), and its
cost in MB/s of one core: the figures behind "Compression" in docs/encryption.md.

Run: .venv/bin/python benchmarks/compression_estimate.py  (corpora: what a Debian machine has; the
office corpus is docx-like zips of XML, as Word and Excel write them, plus the PDF and ODT files found)."""
import glob, os, time, zipfile
import zstandard, lz4.frame

C = 1 << 16

def chunks(paths):
    for p in paths:
        data = open(p, "rb").read()
        for i in range(0, max(len(data), 1), C):
            yield data[i:i + C]

def measure(name, paths):
    total = comp_z = comp_l = 0
    cz = zstandard.ZstdCompressor(level=3)
    t_z = t_l = 0.0
    for ch in chunks(paths):
        total += len(ch)
        t = time.perf_counter(); z = cz.compress(ch); t_z += time.perf_counter() - t
        t = time.perf_counter(); l = lz4.frame.compress(ch); t_l += time.perf_counter() - t
        comp_z += min(len(z), len(ch)); comp_l += min(len(l), len(ch))  # chunks that do not compress stay raw
    print(f"{name}: {total/2**20:.1f} MiB in {len(paths)} files; zstd-3 saves {100*(1-comp_z/total):.0f}% "
          f"at {total/t_z/1e6:.0f} MB/s; lz4 saves {100*(1-comp_l/total):.0f}% at {total/t_l/1e6:.0f} MB/s")

text = sorted(glob.glob("/root/.pyenv/versions/3.11.7/lib/python3.11/*.py"))[:400] + \
       sorted(glob.glob("/usr/share/common-licenses/*"))
office = []
os.makedirs("/tmp/cloudgw-corpus/office", exist_ok=True)
for i, p in enumerate(text[:150]):  # docx-like: XML parts, deflated in a zip, as Word and Excel write them
    out = f"/tmp/cloudgw-corpus/office/doc{i}.docx"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        body = open(p, "rb").read().replace(b"<", b"&lt;")
        z.writestr("word/document.xml", b"<w:document><w:body><w:p><w:r><w:t>" + body + b"</w:t></w:r></w:p></w:body></w:document>")
        z.writestr("[Content_Types].xml", b"<Types/>")
    office.append(out)
office += glob.glob("/usr/share/doc/**/*.pdf", recursive=True) + glob.glob("/usr/share/docutils/**/*.odt", recursive=True)
measure("text (Python sources, licences)", text)
measure("office (docx-like zips, PDF, ODT)", office)
