/* invctl's parts: control and status (invctl.c), supervision (up.c). */
#ifndef INVCTL_H
#define INVCTL_H

_Noreturn void	usage(int);
int		cmd_up(int, char *[]);
int		cmd_down(int, char *[]);

#endif
