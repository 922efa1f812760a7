/* The unit test groups that live in files of their own. */
#ifndef SBX_UNIT_H
#define SBX_UNIT_H

void tar_tests(void);

#endif
