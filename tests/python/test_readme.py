"""README.md's Python session, run verbatim (with the port of a fresh tkvd
for 7379) as a doctest: the README shows what the client really answers."""

import doctest
import os
import re

README = os.environ.get("TKV_README") or os.path.join(
    os.path.dirname(__file__), "..", "..", "README.md")


def python_sessions():
    text = open(README, encoding="utf-8").read()
    section = re.search(r"^## Python client\n(.*?)^## ", text, re.S | re.M)
    assert section, "README.md has no '## Python client' section"
    blocks = re.findall(r"^```pycon\n(.*?)^```", section.group(1), re.S | re.M)
    assert blocks, "the Python client section has no ```pycon session"
    return blocks


def test_readme_session(server):
    for block in python_sessions():
        assert "7379" in block
        source = block.replace("7379", str(server.port))
        test = doctest.DocTestParser().get_doctest(source, {}, "README.md", README, 0)
        assert len(test.examples) >= 10
        out = []
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        result = runner.run(test, out=out.append)
        assert result.failed == 0, "".join(out)
