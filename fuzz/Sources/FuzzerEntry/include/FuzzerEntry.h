// Entry points for the fuzz executables; see FuzzerEntry.c.
#pragma once
