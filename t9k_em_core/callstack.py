"""What a framework does not pass to an integration's hook, found on the caller's stack.

Some frameworks call hooks without an object the integration needs: Keras 3 gives callbacks
neither ``fit``'s batch size nor its ``validation_split``, and Lightning asks a logger for its
experiment without saying which Trainer asks. Both are local variables of a frame further up the
stack (``fit``'s own frame; a Trainer method's ``self`` or ``trainer``). :func:`find_on_stack` is
the one place that walks the stack for them. It only reads the frames, and each frame whose
locals ``pick`` reads costs a snapshot of them: call it once per ``fit`` or per Run, not per step.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Callable, Optional, TypeVar

T = TypeVar('T')


def find_on_stack(pick: Callable[[FrameType], Optional[T]]) -> Optional[T]:
    """The first result of ``pick(frame)`` that is not None, trying the caller's frame first and
    then each frame that called it; None when no frame gives one.

    ``pick`` should check ``frame.f_code.co_name`` before reading ``frame.f_locals`` where it
    can (reading the locals copies them).
    """
    frame: Optional[FrameType] = sys._getframe(1)
    while frame is not None:
        found = pick(frame)
        if found is not None:
            return found
        frame = frame.f_back
    return None
