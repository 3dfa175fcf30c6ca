/* results_views.h: the SQL of schema version 3, the report views
   (results_views.c), applied by results.c's migrator. */
#ifndef LACOS_RESULTS_VIEWS_H
#define LACOS_RESULTS_VIEWS_H

extern const char LACOS_DB_MIGRATION_VIEWS[];

#endif
