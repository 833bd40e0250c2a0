"""The record layout of the completion scanners, named once for the kernels and their callers.

:func:`harmony_np.kernels.scan_completion` (and ``scan_gather``, ``scan_batch``, and
``parse.scan_py``, the pure-Python scanner of short completions) describe each message as one
record of ``REC_WIDTH`` integers, in the column order below, and end with a status.
"""

# columns of a record
REC_KIND = 0  # REC_MESSAGE or REC_HEADER_ONLY
REC_HS = 1  # header start: the token after <|start|> (or 0 for a role-given first header)
REC_HE = 2  # header end: the <|message|> (or the stop token that cut the header short)
REC_CS = 3  # content start (he + 1)
REC_CE = 4  # content end: its terminator, or n when the input ends in the content
REC_FLAGS = 5  # FLAG_* bits
REC_STOP = 6  # the terminator (<|end|>, <|call|>, <|return|>), NO_STOP at the end of input
REC_WIDTH = 7

# kinds
REC_MESSAGE = 0  # header hs:he, content cs:ce
REC_HEADER_ONLY = 1  # not strict, role given: a stop token inside the first header (cs = ce = 0)

# flags
FLAG_HEADER_UNKNOWN = 1  # an id outside the vocabulary in the header
FLAG_CONTENT_UNKNOWN = 2  # ... in the content

# the terminator column of a message the end of input cuts
NO_STOP = -1

# status of a scan: where it stopped
ST_OK = 0  # every token read
ST_UNEXPECTED = 1  # an unexpected token at pos while expecting <|start|>
ST_EOS_HEADER = 2  # the input ends inside a header
