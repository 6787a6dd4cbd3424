"""Large XML files read part by part through defusedxml, holding about one chunk of elements.

A statement document is seen in levels: the root (``Document``), its children (the message),
their children, called containers here (the group header, each statement), and *their*
children, the parts handed over one by one (``Id``, ``Acct``, ``Bal``, ``Ntry``...).
``read_document`` feeds the file to the parser in chunks; after each chunk it hands the reader
every part that has ended, then every container that has ended, in document order, and removes
them from the tree: memory grows with what the reader keeps, not with the XML.

How it stays safe and fast:

- The parser is defusedxml's: a DTD, an entity declaration or an external reference is refused
  before anything is expanded. Only its element events go straight to ElementTree's C
  ``TreeBuilder`` rather than through the pure-Python shims that rename every element (one Python
  call per element was most of the reading time), so element names arrive as expat gives them:
  ``uri}Ntry``.
- The cyclic garbage collector is held off while reading (``gc_paused``).
- With no event per element, an element is known to have ended when it is not on the chain of
  last children from the root (only those can still be open). If the file turns out broken, the
  parts that ended before the break are handed over first (``_open_depth``), as an
  element-by-element reader would: a fault in them is reported rather than the break.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

import defusedxml.ElementTree as DET

CHUNK_BYTES = 32 * 1024  # fed to the parser at a time
UNKNOWN = 1_000_000  # open depth while reading: any element on the chain of last children may be open


class DocumentReader(Protocol):
    def root_started(self, tag: str) -> None:
        """The root element has started (its expat name); raise to refuse the document."""

    def root_child(self, element: Element) -> None:
        """A child of the root has started; called once for each, before any of its parts."""

    def part_ended(self, container: Element, part: Element) -> None:
        """A child of a container has ended; it is removed from the tree afterwards."""

    def container_ended(self, container: Element) -> None:
        """A container has ended, after all its parts were handed over."""


def read_document(data: bytes, reader: DocumentReader) -> None:
    """Feed ``data`` to the parser in chunks, handing ``reader`` each part once it has ended.

    Raises ``ParseError`` (not well-formed, truncated), a ``DefusedXmlException`` (DTD, entity,
    external reference) or whatever the reader raises.
    """
    document = _Document(reader)
    view = memoryview(data)
    with gc_paused():
        try:
            for start in range(0, len(data), CHUNK_BYTES):
                document.feed(view[start:start + CHUNK_BYTES])
            document.close()
        except ParseError:
            document.drain(open_depth=_open_depth(data))
            raise


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector off while a file is read.

    Reading makes and drops hundreds of thousands of small container objects (elements, parsed
    entries) that form no cycles, so reference counting frees them; left on, the collector walks
    the whole process heap again and again as the parsed entries pile up, which costs more than
    the reading itself. It resumes afterwards, also on errors (and stays off for a process that
    had turned it off).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _defused_parser(target=None) -> DET.DefusedXMLParser:
    return DET.DefusedXMLParser(target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True)


def _open_depth(data: bytes) -> int:
    """How many elements are open where a broken document breaks off (read again, slowly)."""
    parser = _defused_parser()
    expat = parser.parser
    depth = 0

    def start(*_):
        nonlocal depth
        depth += 1

    def end(*_):
        nonlocal depth
        depth -= 1

    expat.StartElementHandler, expat.EndElementHandler, expat.CharacterDataHandler = start, end, None
    try:
        parser.feed(data)
        parser.close()
    except ParseError:
        pass
    return depth


class _Document:
    def __init__(self, reader: DocumentReader):
        self.reader = reader
        self.parser = _defused_parser(TreeBuilder())
        self.builder = self.parser.target
        expat = self.parser.parser
        expat.ordered_attributes = False  # attributes as a dict, as TreeBuilder.start takes them
        expat.StartElementHandler = self._root_started
        expat.EndElementHandler = self.builder.end
        self.root: Element | None = None
        self.root_children_seen = 0

    def _root_started(self, tag: str, attrib: dict) -> None:
        self.reader.root_started(tag)
        self.root = self.builder.start(tag, attrib)
        self.parser.parser.StartElementHandler = self.builder.start  # every other element: C only

    def feed(self, chunk) -> None:
        self.parser.feed(chunk)
        self.drain(open_depth=UNKNOWN)

    def close(self) -> None:
        self.parser.close()
        self.drain(open_depth=0)

    def drain(self, *, open_depth: int) -> None:
        """Hand over and drop every part and container that has ended.

        Only the first ``open_depth`` elements of the chain of last children from the root are
        open: 0 once the document has ended, UNKNOWN while reading (any of them may be).
        """
        root = self.root
        if root is None:
            return
        children = list(root)  # the root's children stay (emptied): their count says what is new
        for child_index, child in enumerate(children):
            if child_index >= self.root_children_seen:  # in document order, after the parts before it
                self.reader.root_child(child)
                self.root_children_seen = child_index + 1
            child_open = open_depth >= 2 and child_index == len(children) - 1
            containers = list(child)
            for container_index, container in enumerate(containers):
                container_open = child_open and open_depth >= 3 and container_index == len(containers) - 1
                parts = list(container)
                if container_open and open_depth >= 4 and parts:
                    parts.pop()  # the last part may still be open
                for part in parts:
                    self.reader.part_ended(container, part)
                    container.remove(part)
                if not container_open:
                    self.reader.container_ended(container)
                    child.remove(container)
