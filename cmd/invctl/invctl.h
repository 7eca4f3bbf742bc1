/* invctl's parts: control and status (invctl.c), supervision (up.c). */
#ifndef INVCTL_H
#define INVCTL_H

struct inv_redis_url;

_Noreturn void	usage(int);
void		redis_config(const char *, struct inv_redis_url *);
int		cmd_up(int, char *[]);
int		cmd_down(int, char *[]);

#endif
